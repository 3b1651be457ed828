"""Median time of torch's elementwise ops behind a Bernoulli log-density on a K=5000 chunk
(8150 x 784 entries, one thread): is torch's cross-entropy the fastest form on this CPU?"""
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)
logits = torch.randn(163, 50, 784) * 3  # (k, B, D): one chunk of draws
x = torch.bernoulli(torch.full((50, 784), 0.3))  # (B, D)
sign = 1 - 2 * x


def median_ms(f, n=15):
    f()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[n // 2] * 1e3


ops = {
    "exp": lambda: torch.exp(logits),
    "log": lambda: torch.log(logits.abs()),
    "log1p": lambda: torch.log1p(logits.abs()),
    "softplus": lambda: F.softplus(logits),
    "binary_cross_entropy_with_logits": lambda: F.binary_cross_entropy_with_logits(
        logits, x.expand_as(logits), reduction="none"),
    "softplus(l * (1 - 2x))": lambda: F.softplus(logits * sign),
    "relu(u) + log(1 + exp(-|u|))":
        lambda: torch.relu(logits * sign) + torch.log(1 + torch.exp(-(logits * sign).abs())),
}
for name, f in ops.items():
    print(f"{name:34s} {median_ms(f):7.2f} ms")
