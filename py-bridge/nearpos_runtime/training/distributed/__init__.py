"""Distributed training on torch.distributed (docs/training.md, "Distributed").

The runtime starts a run's processes through torch.distributed's elastic launcher
(:mod:`.launcher`, in a process of its own) and follows it (:mod:`.runner`): the first
process of the node reports events and the result through files in the run's directory
(:mod:`.channel`). Each process (:mod:`.worker`, also ``python -m nearpos_runtime.train`` under
``torchrun``) trains its shard of the global batch (:class:`..sampler.ShardSampler`) in a
DistributedDataParallel replica (:class:`..trainer.Trainer` with a :class:`.group.Group`).
"""
