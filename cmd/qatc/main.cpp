// qatc entry point (placeholder while the CLI is being written).
int main() { return 0; }
