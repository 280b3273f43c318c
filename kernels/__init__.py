"""The CUDA source of minivae's fused kernel, installed as the package ``minivae.kernels``."""
