// Causal attention over packed query rows. Row r belongs to sequence row_seq[r] at absolute
// position row_pos[r] and is row row_idx[r] of that sequence's rows; seq_off[s] is the first
// packed row of sequence s and seq_n[s] its row count. Keys and values hold every position:
// [batch, seq_len, n_kv, d_head]. Scores are, per sequence, a block [n_heads, seq_n[s], seq_len]
// starting at seq_off[s] * n_heads * seq_len.
#include "common.cuh"

struct Dims { int n_heads, n_kv, d_head, seq_len; };

__device__ __forceinline__ long long score_base(int r, int h, const int* row_seq, const int* row_idx,
                                                const int* seq_off, const int* seq_n, Dims m) {
    int s = row_seq[r];
    return ((long long)seq_off[s] * m.n_heads + (long long)h * seq_n[s] + row_idx[r]) * m.seq_len;
}

// One block per (row, head): scores[r, h, j] = q.k_j / sqrt(d_head) for j <= pos, -inf after.
extern "C" __global__ void attention_scores(const float* q, const float* k, float* scores,
                                            const int* row_seq, const int* row_pos,
                                            const int* row_idx, const int* seq_off,
                                            const int* seq_n, Dims m) {
    int r = blockIdx.x, h = blockIdx.y;
    int s = row_seq[r], pos = row_pos[r], kv = h / (m.n_heads / m.n_kv);
    const float* qr = q + ((long long)r * m.n_heads + h) * m.d_head;
    float* out = scores + score_base(r, h, row_seq, row_idx, seq_off, seq_n, m);
    float scale = rsqrtf((float)m.d_head);
    for (int j = threadIdx.x; j < m.seq_len; j += blockDim.x) {
        if (j > pos) { out[j] = -INFINITY; continue; }
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
// (row, head), the row's scores in shared memory (pos + 1 floats, dynamic).
extern "C" __global__ void attention_fused(const float* q, const float* k, const float* v, float* z,
                                           const int* row_seq, const int* row_pos, Dims m) {
    extern __shared__ float sc[];
    int r = blockIdx.x, h = blockIdx.y;
    int s = row_seq[r], pos = row_pos[r], kv = h / (m.n_heads / m.n_kv);
    const float* qr = q + ((long long)r * m.n_heads + h) * m.d_head;
    float scale = rsqrtf((float)m.d_head);
    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= pos; j += blockDim.x) {
        const float* kj = k + (((long long)s * m.seq_len + j) * m.n_kv + kv) * m.d_head;
        float dot = 0.0f;
        for (int c = 0; c < m.d_head; ++c) dot += qr[c] * kj[c];
        sc[j] = dot * scale;
        mx = fmaxf(mx, sc[j]);
    }
    mx = block_max(mx);
    float sum = 0.0f;
    for (int j = threadIdx.x; j <= pos; j += blockDim.x) { sc[j] = expf(sc[j] - mx); sum += sc[j]; }
    sum = block_sum(sum);
    float* zr = z + ((long long)r * m.n_heads + h) * m.d_head;
    for (int c = threadIdx.x; c < m.d_head; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j <= pos; ++j)
            acc += sc[j] * v[(((long long)s * m.seq_len + j) * m.n_kv + kv) * m.d_head + c];
        zr[c] = acc / sum;
    }
}
