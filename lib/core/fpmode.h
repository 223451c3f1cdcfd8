// Floating-point mode of qatc's threads: denormal results flush to zero and denormal inputs
// read as zero (FTZ/DAZ), as TensorFlow's and PyTorch's CPU thread pools do for training.
// Gradients decay into the denormal range during training, and x86 CPUs process each denormal
// operand through a slow microcode path (around a hundred cycles), which made element-wise
// backward passes several times slower. Values below 1.2e-38 carry no useful signal here.
#pragma once

namespace qatc {

// Applies FTZ/DAZ to the calling thread (a no-op on CPUs without them).
void set_flush_denormals();

}  // namespace qatc
