// GPT-2's one-token decoding step at batch 1, float32, on the CPU: one parallel region per token.
//
// At batch 1 a step multiplies one activation vector by every weight once, so its time is the time to stream
// ~500 MB of weights (124M model) from memory, and every pause in that stream is lost. Three choices keep the
// stream going at the speed of a plain read:
//   * the weights are packed once, in the order the step reads them, into one stream per thread: thread t's
//     columns of layer 0's c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj, then layer 1's ..., then the head's. Each
//     thread reads one contiguous run of memory per token, like a `.sum()` over its half of the weights;
//   * the threads stay in one OpenMP region for the whole step and meet at a barrier wherever the next
//     operation needs the previous one's result (5 per layer), instead of starting ~50 parallel regions;
//   * the matrix-vector kernel reads 256-bit vectors (measured on an AVX-512 AMD EPYC: 512-bit loads streamed
//     ~10% slower than `.sum()`, 256-bit ones as fast).
// Everything between the products (layer norms, attention over the cache, GELU, residuals) is small and runs
// inside the same region: a layer norm is recomputed by every thread (cheaper than a barrier), attention is
// split by heads, and each product's epilogue adds the bias, applies the activation or the residual.
//
// Packed layout of a weight W (N out x K in): blocks of NR output columns, block b = W[b*NR:(b+1)*NR, :]^T
// stored (K, NR), rows past N zero. Thread t of T owns blocks [t*nb/T, (t+1)*nb/T) of every weight (and takes
// the others' last blocks when it is done with its own, see `Claims`).
// The Python side (fast/gpt2_native.py) packs with the same rule.

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

typedef float v8 __attribute__((vector_size(32)));  // 8 floats: lowered to the widest unit <= 256 bits
typedef float v8u __attribute__((vector_size(32), aligned(4)));  // the same, at any float address
typedef int32_t v8i __attribute__((vector_size(32)));

enum { NR = 32, U = NR / 8 };  // output columns per block, 8-float accumulators per block
enum { STORE = 0, ADD = 1, ACTIVATE = 2 };  // what a product does with x . W[col] + bias[col]
enum { GELU_TANH = 0, GELU_ERF = 1, RELU = 2, SILU = 3 };

// Filled by Python (ctypes.Structure of the same layout); pointers into the model's own tensors.
typedef struct {
  int64_t n_layer, n_embd, n_head, n_inner, vocab, n_threads, activation;
  double eps;                  // layer norm epsilon
  const float* wte;            // (vocab, n_embd) token embeddings
  const float* wpe;            // (n_positions, n_embd) position embeddings
  const float* stream;         // the packed weights: thread 0's stream, then thread 1's, ...
  const float* const* params;  // 8 per layer: ln_1 w, b; c_attn bias; attn c_proj bias; ln_2 w, b; c_fc bias;
                               // mlp c_proj bias (a bias may be NULL)
  const float* ln_f_weight;
  const float* ln_f_bias;
  const float* head_bias;      // NULL for GPT-2's head
  const double* scale;         // (n_layer,) attention scale of each layer
} Model;

static inline int64_t split(int64_t n, int64_t T, int64_t t) { return t * n / T; }
static inline int64_t n_blocks(int64_t n) { return (n + NR - 1) / NR; }

// e^x for 8 floats: 2^n e^r with n = round(x / ln 2), |r| <= ln(2) / 2, e^r by its Taylor series to r^6
// (relative error ~1e-7, like expf). Written with vector types: scalar expf in a loop would cost ~5% of a step.
static inline v8 exp8(v8 x) {
  const v8 lo = {0}, hi = lo + 88.0f, min = lo - 87.0f;
  x = x < min ? min : (x > hi ? hi : x);
  const v8 magic = lo + 12582912.0f;                  // 1.5 * 2^23: adding it rounds to an integer
  const v8 n = (x * 1.44269504f + magic) - magic;
  const v8 r = (x - n * 0.693145752f) - n * 1.42860677e-6f;  // ln 2 in two parts: r exact to float precision
  v8 p = lo + 1.0f / 720;
  p = p * r + 1.0f / 120; p = p * r + 1.0f / 24; p = p * r + 1.0f / 6; p = p * r + 0.5f; p = p * r + 1.0f;
  p = p * r + 1.0f;
  const v8i two_n = (__builtin_convertvector(n, v8i) + 127) << 23;  // 2^n as float bits
  return p * (v8)two_n;
}

// The activation of 8 values. The sigmoid forms agree with HF's tanh / sigmoid forms to float rounding:
// 0.5 v (1 + tanh(u)) = v / (1 + e^(-2u)).
static inline v8 activate8(v8 v, int64_t act) {
  const v8 one = {1, 1, 1, 1, 1, 1, 1, 1};
  switch (act) {
    case GELU_TANH: return v / (one + exp8(-1.5957691216057308f * (v + 0.044715f * v * v * v)));  // gelu_new
    case GELU_ERF: {
      v8 out;
      for (int i = 0; i < 8; ++i) out[i] = 0.5f * v[i] * (1.0f + erff(v[i] * 0.7071067811865476f));
      return out;
    }
    case RELU: return v > 0.0f ? v : one - one;
    default: return v / (one + exp8(-v));  // SILU
  }
}

// Block b (columns [b*NR, (b+1)*NR)) of x (K) . W^T, whose packed weights start at w, finished by `epilogue`.
static inline void block(const float* w, int64_t b, int64_t K, int64_t N, const float* x, const float* bias,
                         float* y, int epilogue, int64_t act) {
  const v8* wv = (const v8*)w;
  v8 acc[U];
  for (int u = 0; u < U; ++u) acc[u] = (v8){0};
  for (int64_t k = 0; k < K; ++k) {
    const float xk = x[k];
    for (int u = 0; u < U; ++u) acc[u] += wv[k * U + u] * xk;
  }
  if (bias)
    for (int64_t j = 0, col = b * NR; j < NR && col < N; ++j, ++col) acc[j / 8][j % 8] += bias[col];
  if (epilogue == ACTIVATE)
    for (int u = 0; u < U; ++u) acc[u] = activate8(acc[u], act);
  for (int64_t j = 0, col = b * NR; j < NR && col < N; ++j, ++col) {
    if (epilogue == ADD) y[col] += acc[j / 8][j % 8];
    else y[col] = acc[j / 8][j % 8];
  }
}

// Who computes which block. Thread u owns a contiguous share of every product's blocks and takes them one by one
// from the front; a thread done with its own share takes the others' remaining blocks from the back. On a shared
// machine one thread often streams a little slower than the other for a while, and every barrier waits for the
// slowest: without this, those waits cost ~4% of a step here. One 64-byte line per (product, owner), holding the
// owner's unclaimed blocks as [front, back) in the low and high 32 bits.
typedef struct {
  uint64_t range;
  char pad[56];
} Claims;

static inline bool claim(Claims* c, bool front, int64_t* i) {
  uint64_t v = __atomic_load_n(&c->range, __ATOMIC_RELAXED);
  for (;;) {
    const uint64_t lo = v & 0xffffffffu, hi = v >> 32;
    if (lo >= hi) return false;
    // relaxed: the counter only decides who computes a block; the barrier after the product publishes results
    if (__atomic_compare_exchange_n(&c->range, &v, front ? v + 1 : v - (1ull << 32), true, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
      *i = front ? (int64_t)lo : (int64_t)hi - 1;
      return true;
    }
  }
}

// One product: thread t computes its share, then helps the others. w[u] is where thread u's share of this
// product starts in u's stream; all of them are advanced past it.
static void product(const float** w, Claims* claims, int64_t t, int64_t T, int64_t K, int64_t N, const float* x,
                    const float* bias, float* y, int epilogue, int64_t act) {
  const int64_t nb = n_blocks(N);
  int64_t i;
  for (int64_t d = 0; d < T; ++d) {
    const int64_t u = (t + d) % T, first = split(nb, T, u);
    while (claim(claims + u, d == 0, &i)) block(w[u] + i * NR * K, first + i, K, N, x, bias, y, epilogue, act);
  }
  for (int64_t u = 0; u < T; ++u) w[u] += (split(nb, T, u + 1) - split(nb, T, u)) * NR * K;
}

static void layer_norm(const float* x, const float* g, const float* b, int64_t C, double eps, float* out) {
  double mean = 0.0, var = 0.0;
  for (int64_t c = 0; c < C; ++c) mean += x[c];
  mean /= C;
  for (int64_t c = 0; c < C; ++c) var += (x[c] - mean) * (x[c] - mean);
  const float inv = (float)(1.0 / sqrt(var / C + eps)), m = (float)mean;
  for (int64_t c = 0; c < C; ++c) out[c] = (x[c] - m) * inv * g[c] + b[c];
}

static inline float dot(const float* a, const float* b, int64_t n) {
  v8 acc = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc += *(const v8u*)(a + i) * *(const v8u*)(b + i);
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

static inline void axpy(float* y, float a, const float* x, int64_t n) {  // y += a x
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) *(v8u*)(y + i) += a * *(const v8u*)(x + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

// One head: store this token's key and value in slot `past`, attend over slots [0, past] (mask[s] == 0 hides
// slot s), write the head's output (hs) to y. `scores` holds max_len + 8 floats.
static void attend(const float* q, const float* k_new, const float* v_new, float* K, float* V, int64_t past,
                   int64_t hs, const uint8_t* mask, double scale, float* scores, float* y) {
  memcpy(K + past * hs, k_new, hs * sizeof(float));
  memcpy(V + past * hs, v_new, hs * sizeof(float));
  const int64_t S = past + 1, S8 = (S + 7) / 8 * 8;
  float top = -INFINITY;
  for (int64_t s = 0; s < S; ++s) {
    scores[s] = (mask && !mask[s]) ? -INFINITY : dot(q, K + s * hs, hs) * (float)scale;
    if (scores[s] > top) top = scores[s];
  }
  for (int64_t s = S; s < S8; ++s) scores[s] = -INFINITY;
  const v8 zero = {0};
  v8 sum = zero;
  for (int64_t s = 0; s < S8; s += 8) {  // exp(-inf - top) = 0: hidden and padding slots weigh nothing
    v8 e = *(v8u*)(scores + s) - top;
    e = e < -100.0f ? zero : exp8(e);
    *(v8u*)(scores + s) = e;
    sum += e;
  }
  const float inv = 1.0f / (((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7])));
  for (int64_t d = 0; d < hs; ++d) y[d] = 0.0f;
  for (int64_t s = 0; s < S; ++s)
    if (scores[s] != 0.0f) axpy(y, scores[s] * inv, V + s * hs, hs);
}

// Floats of packed weights thread t reads per step.
static int64_t stream_length(const Model* m, int64_t t) {
  const int64_t C = m->n_embd, I = m->n_inner, T = m->n_threads;
  const int64_t N[4] = {3 * C, C, I, C}, K[4] = {C, C, C, I};
  int64_t n = 0;
  for (int p = 0; p < 4; ++p)
    n += m->n_layer * (split(n_blocks(N[p]), T, t + 1) - split(n_blocks(N[p]), T, t)) * NR * K[p];
  return n + (split(n_blocks(m->vocab), T, t + 1) - split(n_blocks(m->vocab), T, t)) * NR * C;
}

extern "C" int64_t pia_gpt2_stream_length(const Model* m, int64_t t) { return stream_length(m, t); }

// Logits (vocab) of the token `token` at position `position`, its key and value written to slot `past` of each
// layer's cache (k[l], v[l]: (n_head, max_len, head_dim)); mask (>= past + 1 bytes, or NULL) hides slots.
// `products_only` runs the products and barriers alone, on whatever the buffers hold (for benchmarks).
// Returns 0, or -1 when OpenMP gave fewer threads than the weights were packed for (nothing is computed).
extern "C" int pia_gpt2_decode_step(const Model* m, float* const* k, float* const* v, int64_t max_len,
                                    int64_t token, int64_t position, int64_t past, const uint8_t* mask,
                                    float* logits, int products_only) {
  const int64_t C = m->n_embd, I = m->n_inner, V = m->vocab, L = m->n_layer, T = m->n_threads;
  const int64_t nh = m->n_head, hs = C / nh, n_products = 4 * L + 1;
  // shared: residual x, qkv, attention output y, MLP hidden a; per thread: normed h and attention scores
  float* buf = (float*)calloc(6 * C + I + T * (C + max_len + 8), sizeof(float));
  Claims* claims = (Claims*)aligned_alloc(64, n_products * T * sizeof(Claims));
  if (!buf || !claims) {
    free(buf);
    free(claims);
    return -2;
  }
  float *x = buf, *qkv = x + C, *y = qkv + 3 * C, *a = y + C, *h_all = a + I, *scores_all = h_all + T * C;
  const int64_t N[4] = {3 * C, C, I, C};
  for (int64_t p = 0; p < n_products; ++p)
    for (int64_t u = 0; u < T; ++u) {
      const int64_t nb = n_blocks(p == 4 * L ? V : N[p % 4]);
      claims[p * T + u].range = (uint64_t)(split(nb, T, u + 1) - split(nb, T, u)) << 32;
    }
  if (!products_only)
    for (int64_t c = 0; c < C; ++c) x[c] = m->wte[token * C + c] + m->wpe[position * C + c];
  int ok = 1;
#pragma omp parallel num_threads(T)
  {
    if (omp_get_num_threads() != T) {
#pragma omp atomic write
      ok = 0;
    } else {
      const int64_t t = omp_get_thread_num();
      float *h = h_all + t * C, *scores = scores_all + t * (max_len + 8);
      std::vector<const float*> w(T);
      w[0] = m->stream;
      for (int64_t u = 1; u < T; ++u) w[u] = w[u - 1] + stream_length(m, u - 1);
      Claims* c = claims;
      for (int64_t l = 0; l < L; ++l, c += 4 * T) {
        const float* const* p = m->params + 8 * l;
        if (!products_only) layer_norm(x, p[0], p[1], C, m->eps, h);
        product(w.data(), c, t, T, C, 3 * C, h, p[2], qkv, STORE, 0);
#pragma omp barrier
        if (!products_only)
          for (int64_t head = split(nh, T, t); head < split(nh, T, t + 1); ++head)
            attend(qkv + head * hs, qkv + C + head * hs, qkv + 2 * C + head * hs, k[l] + head * max_len * hs,
                   v[l] + head * max_len * hs, past, hs, mask, m->scale[l], scores, y + head * hs);
#pragma omp barrier
        product(w.data(), c + T, t, T, C, C, y, p[3], x, ADD, 0);
#pragma omp barrier
        if (!products_only) layer_norm(x, p[4], p[5], C, m->eps, h);
        product(w.data(), c + 2 * T, t, T, C, I, h, p[6], a, products_only ? STORE : ACTIVATE, m->activation);
#pragma omp barrier
        product(w.data(), c + 3 * T, t, T, I, C, a, p[7], x, ADD, 0);
#pragma omp barrier
      }
      if (!products_only) layer_norm(x, m->ln_f_weight, m->ln_f_bias, C, m->eps, h);
      product(w.data(), c, t, T, C, V, h, m->head_bias, logits, STORE, 0);
    }
  }
  free(claims);
  free(buf);
  return ok ? 0 : -1;
}
