"""PyTorch on the shapes of tooling/device/check.mjs, in the same run: torch.matmul TFLOP/s (bf16, and f32 with
TF32 off, as cuBLAS's CUBLAS_COMPUTE_32F) and the bandwidth of the memory-bound ops that check.mjs times in our
kernels. Prints one JSON line. Timing: CUDA events, median of 5 batches after a warm-up."""
import json
import torch


def time_ms(fn, iters=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters):
            fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) / iters)
    return sorted(out)[2]


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = "cuda"
    res = {"torch": torch.__version__, "gemm": [], "bandwidth": []}
    for dt, tdt in (("bf16", torch.bfloat16), ("f32", torch.float32)):
        for M, N, K in ((4096, 4096, 4096), (8192, 8192, 8192), (16384, 2048, 7168), (2048, 7168, 2048)):
            A = torch.zeros(M, K, dtype=tdt, device=dev)
            B = torch.zeros(K, N, dtype=tdt, device=dev)
            ms = time_ms(lambda: torch.matmul(A, B))
            res["gemm"].append({"dtype": dt, "M": M, "N": N, "K": K, "ms": ms, "tflops": 2 * M * N * K / (ms * 1e9)})
            del A, B
    n = 1 << 28
    rows, cols = 1 << 16, 4096
    for dt, tdt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        b = 4 if dt == "f32" else 2
        x = torch.zeros(n, dtype=tdt, device=dev)
        y = torch.zeros(n, dtype=tdt, device=dev)
        out = torch.empty_like(x)
        if dt == "f32":
            ms = time_ms(lambda: out.copy_(x), 5)
            res["bandwidth"].append({"kernel": "device-to-device copy (roofline)", "dtype": dt, "GBs": 2 * n * b / (ms * 1e6)})
        ms = time_ms(lambda: torch.add(x, y, alpha=2, out=out), 5)
        res["bandwidth"].append({"kernel": "axpby", "dtype": dt, "GBs": 3 * n * b / (ms * 1e6)})
        x2 = x.view(rows, cols)
        w = torch.ones(cols, dtype=tdt, device=dev)
        rms = getattr(torch.nn.functional, "rms_norm", None)
        if rms is not None:
            ms = time_ms(lambda: rms(x2, (cols,), w, 1e-6), 5)
            res["bandwidth"].append({"kernel": "rmsnorm_fwd", "dtype": dt, "GBs": 2 * n * b / (ms * 1e6)})
        ms = time_ms(lambda: torch.softmax(x2, -1), 5)
        res["bandwidth"].append({"kernel": "softmax_fwd", "dtype": dt, "GBs": 2 * n * b / (ms * 1e6)})
        del x, y, out, x2
    print(json.dumps(res))


if __name__ == "__main__":
    main()
