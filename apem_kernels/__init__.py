"""apem_kernels: fused Triton kernels for masked inducing-point attention and the smooth-step gate."""
