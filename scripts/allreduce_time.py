"""Time gloo's all-reduce of float32 vectors (1k, 100k and 636k entries: the 784-400-20 net's gradient)
between the processes of ``torchrun --standalone --nproc_per_node=2 scripts/allreduce_time.py``."""
import time

import torch
import torch.distributed as dist

torch.set_num_threads(1)
dist.init_process_group("gloo")
for n in (1_000, 100_000, 636_000):
    t = torch.randn(n)
    for _ in range(10):
        dist.all_reduce(t)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(200):
        dist.all_reduce(t)
    if dist.get_rank() == 0:
        print(f"all-reduce of {n} float32: {(time.perf_counter() - t0) / 200 * 1e3:.3f} ms")
dist.destroy_process_group()
