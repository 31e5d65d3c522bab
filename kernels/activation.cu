// Elementwise kernels: the GEMM epilogues (bias, GELU-new, SiLU gate), residual adds.
#include "common.cuh"

__device__ __forceinline__ float gelu_new(float u) {
    const float k = 0.7978845608028654f; // sqrt(2 / pi)
    return 0.5f * u * (1.0f + tanhf(k * (u + 0.044715f * u * u * u)));
}

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

// After out = x @ W (or out += x @ W): kind 0 adds the bias, 1 applies gelu_new(y + bias),
// 2 applies silu(gate) * (y + bias). out, gate: [rows, n]  bias: [n]
extern "C" __global__ void epilogue(float* out, const float* bias, int has_bias, const float* gate,
                                    int kind, int rows, int n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * n) return;
    float y = out[i] + (has_bias ? bias[i % n] : 0.0f);
    if (kind == 1) y = gelu_new(y);
    else if (kind == 2) y = silu(gate[i]) * y;
    out[i] = y;
}

// acc += x. acc, x: [len]
extern "C" __global__ void add_inplace(float* acc, const float* x, long long len) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) acc[i] += x[i];
}

// x = gelu_new(x). x: [len]
extern "C" __global__ void gelu_new_inplace(float* x, long long len) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) x[i] = gelu_new(x[i]);
}

// linear = silu(gate) * linear. gate, linear: [len]
extern "C" __global__ void silu_mul(const float* gate, float* linear, long long len) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) linear[i] *= silu(gate[i]);
}
