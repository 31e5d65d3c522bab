// Causal attention over packed query rows. Row r belongs to sequence row_seq[r] at absolute
// position row_pos[r] and is row row_idx[r] of that sequence's rows; seq_off[s] is the first
// packed row of sequence s and seq_n[s] its row count. Keys and values hold every position:
// [batch, seq_len, n_kv, d_head]. Scores are, per sequence, a block [n_heads, seq_n[s], seq_len]
// starting at seq_off[s] * n_heads * seq_len. A padded pass (masked != 0) attends, in sequence
// s, only the real keys key_lo[s] <= j < key_hi[s]; a query with none at or before it gets a
// row of -inf scores (softmax: zeros) and z = 0. Unmasked, key_lo / key_hi are not read.
#include "common.cuh"

struct Dims { int n_heads, n_kv, d_head, seq_len; };

__device__ __forceinline__ long long score_base(int r, int h, const int* row_seq, const int* row_idx,
                                                const int* seq_off, const int* seq_n, Dims m) {
    int s = row_seq[r];
    return ((long long)seq_off[s] * m.n_heads + (long long)h * seq_n[s] + row_idx[r]) * m.seq_len;
}

// The keys sequence s may attend: [*lo, *hi).
__device__ __forceinline__ void key_range(int s, const int* key_lo, const int* key_hi, int masked,
                                          int seq_len, int* lo, int* hi) {
    *lo = masked ? key_lo[s] : 0;
    *hi = masked ? key_hi[s] : seq_len;
}

// One block per (row, head): scores[r, h, j] = q.k_j / sqrt(d_head) for j <= pos, -inf after
// (and outside the real keys when masked).
extern "C" __global__ void attention_scores(const float* q, const float* k, float* scores,
                                            const int* row_seq, const int* row_pos,
                                            const int* row_idx, const int* seq_off,
                                            const int* seq_n, const int* key_lo,
                                            const int* key_hi, int masked, Dims m) {
    int r = blockIdx.x, h = blockIdx.y;
    int s = row_seq[r], pos = row_pos[r], kv = h / (m.n_heads / m.n_kv);
    int lo, hi;
    key_range(s, key_lo, key_hi, masked, m.seq_len, &lo, &hi);
    const float* qr = q + ((long long)r * m.n_heads + h) * m.d_head;
    float* out = scores + score_base(r, h, row_seq, row_idx, seq_off, seq_n, m);
    float scale = rsqrtf((float)m.d_head);
    for (int j = threadIdx.x; j < m.seq_len; j += blockDim.x) {
        if (j > pos || j < lo || j >= hi) { out[j] = -INFINITY; continue; }
        const float* kj = k + (((long long)s * m.seq_len + j) * m.n_kv + kv) * m.d_head;
        float dot = 0.0f;
        for (int c = 0; c < m.d_head; ++c) dot += qr[c] * kj[c];
        out[j] = dot * scale;
    }
}

// Softmax of every row of len, in place; a row with no finite value or with a NaN becomes 0.
extern "C" __global__ void softmax_rows(float* x, int len) {
    float* row = x + (long long)blockIdx.x * len;
    float mx = -INFINITY;
    int nan = 0;
    for (int j = threadIdx.x; j < len; j += blockDim.x) { mx = fmaxf(mx, row[j]); nan |= row[j] != row[j]; }
    mx = block_max(mx);
    float bad = block_sum((float)nan);
    if (mx == -INFINITY || bad > 0.0f) {
        for (int j = threadIdx.x; j < len; j += blockDim.x) row[j] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int j = threadIdx.x; j < len; j += blockDim.x) { float e = expf(row[j] - mx); row[j] = e; sum += e; }
    sum = block_sum(sum);
    for (int j = threadIdx.x; j < len; j += blockDim.x) row[j] /= sum;
}

// One block per (row, head): z[r, h] = sum_j pattern[r, h, j] v_j over every key position.
extern "C" __global__ void attention_values(const float* pattern, const float* v, float* z,
                                            const int* row_seq, const int* row_idx,
                                            const int* seq_off, const int* seq_n, Dims m) {
    int r = blockIdx.x, h = blockIdx.y;
    int s = row_seq[r], kv = h / (m.n_heads / m.n_kv);
    const float* p = pattern + score_base(r, h, row_seq, row_idx, seq_off, seq_n, m);
    float* zr = z + ((long long)r * m.n_heads + h) * m.d_head;
    for (int c = threadIdx.x; c < m.d_head; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < m.seq_len; ++j)
            acc += p[j] * v[(((long long)s * m.seq_len + j) * m.n_kv + kv) * m.d_head + c];
        zr[c] = acc;
    }
}

// Scores, causal softmax and values in one kernel for unwatched attention: one block per
// (row, head), the row's scores in shared memory (pos + 1 floats, dynamic). Keys lo..=last.
extern "C" __global__ void attention_fused(const float* q, const float* k, const float* v, float* z,
                                           const int* row_seq, const int* row_pos,
                                           const int* key_lo, const int* key_hi, int masked,
                                           Dims m) {
    extern __shared__ float sc[];
    int r = blockIdx.x, h = blockIdx.y;
    int s = row_seq[r], kv = h / (m.n_heads / m.n_kv);
    int lo, hi;
    key_range(s, key_lo, key_hi, masked, m.seq_len, &lo, &hi);
    int pos = min(row_pos[r], hi - 1);
    const float* qr = q + ((long long)r * m.n_heads + h) * m.d_head;
    if (pos < lo) {  // a pad query before every real key
        for (int c = threadIdx.x; c < m.d_head; c += blockDim.x)
            z[((long long)r * m.n_heads + h) * m.d_head + c] = 0.0f;
        return;
    }
    float scale = rsqrtf((float)m.d_head);
    float mx = -INFINITY;
    for (int j = lo + threadIdx.x; j <= pos; j += blockDim.x) {
        const float* kj = k + (((long long)s * m.seq_len + j) * m.n_kv + kv) * m.d_head;
        float dot = 0.0f;
        for (int c = 0; c < m.d_head; ++c) dot += qr[c] * kj[c];
        sc[j] = dot * scale;
        mx = fmaxf(mx, sc[j]);
    }
    mx = block_max(mx);
    float sum = 0.0f;
    for (int j = lo + threadIdx.x; j <= pos; j += blockDim.x) { sc[j] = expf(sc[j] - mx); sum += sc[j]; }
    sum = block_sum(sum);
    float* zr = z + ((long long)r * m.n_heads + h) * m.d_head;
    for (int c = threadIdx.x; c < m.d_head; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = lo; j <= pos; ++j)
            acc += sc[j] * v[(((long long)s * m.seq_len + j) * m.n_kv + kv) * m.d_head + c];
        zr[c] = acc / sum;
    }
}
