// LayerNorm / RMSNorm: fused, or in three steps (scale, divide, affine) so that hook_scale and
// hook_normalized can be watched between them. One block per row; sums in f32 per thread and
// a tree across the block (the CPU sums in f64: differences are rounding only).
#include "common.cuh"

// Mean (0 without centring) and scale = sqrt(mean((x - mean)^2) + eps) of row x[0..d].
__device__ void mean_scale(const float* x, int d, float eps, int center, float* mean, float* scale) {
    float s = 0.0f;
    if (center) {
        for (int c = threadIdx.x; c < d; c += blockDim.x) s += x[c];
        s = block_sum(s) / d;
    }
    float q = 0.0f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) { float v = x[c] - s; q += v * v; }
    q = block_sum(q) / d;
    *mean = s;
    *scale = sqrtf(q + eps);
}

// out = (x - mean) / scale * w (+ b); scale[r] = the divisor. x, out: [rows, d]  scale: [rows]
extern "C" __global__ void norm_fused(const float* x, float* out, float* scale, const float* w,
                                      const float* b, int has_b, int d, float eps, int center) {
    int r = blockIdx.x;
    const float* xr = x + (long long)r * d;
    float* orow = out + (long long)r * d;
    float mean, sc;
    mean_scale(xr, d, eps, center, &mean, &sc);
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float v = (xr[c] - mean) / sc * w[c];
        orow[c] = has_b ? v + b[c] : v;
    }
    if (threadIdx.x == 0) scale[r] = sc;
}

// First step: out = x - mean (or x), scale[r]. x, out: [rows, d]  scale: [rows]
extern "C" __global__ void norm_scale(const float* x, float* out, float* scale, int d, float eps,
                                      int center) {
    int r = blockIdx.x;
    const float* xr = x + (long long)r * d;
    float* orow = out + (long long)r * d;
    float mean, sc;
    mean_scale(xr, d, eps, center, &mean, &sc);
    for (int c = threadIdx.x; c < d; c += blockDim.x) orow[c] = xr[c] - mean;
    if (threadIdx.x == 0) scale[r] = sc;
}

// out[r, c] /= scale[r]. out: [rows, d]
extern "C" __global__ void divide_by_scale(float* out, const float* scale, int rows, int d) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * d) return;
    out[i] /= scale[i / d];
}

// out[r, c] = out[r, c] * w[c] (+ b[c]). out: [rows, d]
extern "C" __global__ void affine(float* out, const float* w, const float* b, int has_b, int rows,
                                  int d) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * d) return;
    int c = (int)(i % d);
    float v = out[i] * w[c];
    out[i] = has_b ? v + b[c] : v;
}
