"""Train a generated AiM model with DistributedDataParallel, launched by torchrun.

    aimgen convert examples/digits_cnn.py --input-shape 1,1,8,8 -o digits_cnn_aim.py
    torchrun --nproc-per-node 2 docs/experiment/train_ddp.py digits_cnn_aim.py --epochs 3 [--compile]

Nothing here is aimgen-specific: the generated file is plain PyTorch, so the usual DDP recipe
applies (init the process group, wrap the model, shard the data with DistributedSampler).
Only the memory needs a word: the carry is a buffer that the model itself averages over the
ranks after each training forward (``Memory.write`` all-reduces it), so every rank holds the
same memory even when DDP does not sync buffers; the script checks that at the end.
Uses gloo on CPU and nccl when each rank has a GPU. Data: scikit-learn's digits.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def load_generated(path: Path) -> torch.nn.Module:
    """``build_model()`` of a file written by ``aimgen convert``."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model()


def ddp_without_buffer_sync(module: torch.nn.Module, **kwargs) -> DistributedDataParallel:
    """DDP that does not copy rank 0's buffers over the others at each forward, so the carry
    agrees across ranks only because the model averages it itself. Newer torch spells this
    ``forward_sync_buffers=False`` (``broadcast_buffers`` is deprecated there)."""
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return DistributedDataParallel(module, forward_sync_buffers=False, **kwargs)
    return DistributedDataParallel(module, broadcast_buffers=False, **kwargs)


def digits() -> TensorDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return TensorDataset(x, torch.tensor(bunch.target))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a generated file (aimgen convert -o FILE.py)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--compile", nargs="?", const="inductor", metavar="BACKEND",
                        help="torch.compile the model before DDP (backend: inductor, or aot_eager)")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")  # torchrun sets RANK, WORLD_SIZE, MASTER_*
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if not cuda:
        torch.set_num_threads(1)
    torch.manual_seed(0)  # same initial weights on every rank (DDP also broadcasts them)
    model = load_generated(args.model).to(device)
    net = torch.compile(model, backend=args.compile) if args.compile else model
    ddp = ddp_without_buffer_sync(net, device_ids=[device.index] if cuda else None)
    data = digits()
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    opt = torch.optim.AdamW(ddp.parameters(), lr=args.lr)
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a new shard order each epoch, different data on every rank
        ddp.train()
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(ddp(x.to(device)), y.to(device))
            loss.backward()
            opt.step()
        if rank == 0:
            print(f"epoch {epoch + 1}: last loss {loss.item():.3f}", flush=True)

    # every rank must hold the same carry and the same weights
    for name, tensor in [("memory.carry", model.memory.carry), *model.named_parameters()]:
        gathered = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(gathered, tensor.detach().contiguous())
        if not all(torch.equal(gathered[0], g) for g in gathered):
            raise SystemExit(f"rank {rank}: {name} differs between ranks")
    if rank == 0:
        print(f"{world} ranks agree on the carry (|carry| = {model.memory.carry.abs().sum():.4f}) "
              "and on every weight", flush=True)
    del ddp, opt   # DDP's reducer gone and every rank done before the group goes
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
    # gloo's worker threads can still abort the interpreter's own exit after the group is
    # destroyed ("terminate called without an active exception", SIGABRT; now and then on a
    # loaded CPU machine, see pytorch/pytorch#179291): the work is done and printed, so leave
    # without that teardown. An error in main() is raised before this line, as usual
    os._exit(0)
