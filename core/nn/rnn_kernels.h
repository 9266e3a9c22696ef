/* Plan-side kernels of the recurrent records, included twice by plan.c with
 * T = float / double (like kernels.h), RTANH and RSIG the cell's tanh and
 * sigmoid: float32 uses the vectorising tanhf_vec (sigmoid(a) = (1 +
 * tanh(a/2)) / 2), float64 libm's tanh and 1 / (1 + exp(-a)). The cell
 * arithmetic is core/ops/rnn.c's, term for term (the same gate order and
 * sums), so a plan matches the Lua layers to rounding (float64: the same
 * functions; float32: within an ulp or two of each activation). They
 * allocate nothing. */

/* Deterministic gemm with a transposed weight: C[m, n] = (acc ? C[m, n] : 0)
 * + sum_k A[m, k] W[n, k], the sum in k order whatever M (the row count of a
 * chunk) is. W is [N, K] row-major. */
static void SFX(gemm_nt_det)(int64_t M, int64_t N, int64_t K, const T *A, int64_t lda, const T *W, T *C, int64_t ldc,
                             bool acc)
{
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
    for (int64_t m = 0; m < M; m++) {
        const T *a = A + m * lda;
        T *c = C + m * ldc;
        for (int64_t n = 0; n < N; n++) {
            const T *w = W + n * K;
            T s = 0;
            for (int64_t k = 0; k < K; k++)
                s += a[k] * w[k];
            c[n] = acc ? c[n] + s : s;
        }
    }
}


/* The cell at one step for nb rows: gates of row b at P + b ldp (the input
 * projection, plus h_{t-1} W_hh^T except for GRU), GRU's hidden side at
 * S + b GH and its previous hidden state at hp + b ldh (zeros at t = 0),
 * LSTM's cell state c [nb, H] (zeros at t = 0; read and written), the new
 * hidden state to y + b ldy. No branch inside the loops over j: they
 * vectorise (with RTANH, RSIG inline: float32). */
CLONES static void SFX(rnn_cell)(int cell, int64_t nb, int64_t H, const T *P, int64_t ldp, const T *S, const T *hp,
                                 int64_t ldh, T *c, const T *bih, const T *bhh, T *y, int64_t ldy)
{
    const int64_t GH = (cell == MIMIC_CELL_LSTM ? 4 : cell == MIMIC_CELL_GRU ? 3 : 1) * H;
    for (int64_t b = 0; b < nb; b++) {
        const T *r = P + b * ldp;
        T *h = y + b * ldy;
        switch (cell) {
        case MIMIC_CELL_RNN_TANH:
            SIMD for (int64_t j = 0; j < H; j++)
                h[j] = RTANH(r[j] + bih[j] + bhh[j]);
            break;
        case MIMIC_CELL_RNN_RELU:
            SIMD for (int64_t j = 0; j < H; j++) {
                T a = r[j] + bih[j] + bhh[j];
                h[j] = a > 0 ? a : (T)0;
            }
            break;
        case MIMIC_CELL_LSTM: {
            T *cb = c + b * H;
            SIMD for (int64_t j = 0; j < H; j++) {
                T i = RSIG(r[j] + bih[j] + bhh[j]);
                T f = RSIG(r[H + j] + bih[H + j] + bhh[H + j]);
                T gg = RTANH(r[2 * H + j] + bih[2 * H + j] + bhh[2 * H + j]);
                T o = RSIG(r[3 * H + j] + bih[3 * H + j] + bhh[3 * H + j]);
                T cv = f * cb[j] + i * gg;
                cb[j] = cv;
                h[j] = o * RTANH(cv);
            }
            break;
        }
        default: {
            const T *s = S + b * GH, *hv = hp + b * ldh;
            SIMD for (int64_t j = 0; j < H; j++) {
                T rr = RSIG(r[j] + bih[j] + s[j] + bhh[j]);
                T z = RSIG(r[H + j] + bih[H + j] + s[H + j] + bhh[H + j]);
                T hn = s[2 * H + j] + bhh[2 * H + j];
                T n = RTANH(r[2 * H + j] + bih[2 * H + j] + rr * hn);
                h[j] = ((T)1 - z) * n + z * hv[j];
            }
        }
        }
    }
}
