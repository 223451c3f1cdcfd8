// The one translation unit that compiles stb_image's implementation. The build only needs the
// header (find_path(STB_INCLUDE_DIR stb/stb_image.h) in CMakeLists.txt), as on distributions that
// ship stb headers only; Debian's libstb-dev also has a libstb.a, which qatc does not link, so
// the two can never disagree. Only JPEG and PNG are compiled in (the file types an image folder
// holds; less code facing untrusted files), and files are read by qatc itself
// (stbi_load_from_memory), so stdio is left out. stb_image keeps its error string per thread
// (STBI_THREAD_LOCAL, on in C++11), so parallel decoding is safe.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>
