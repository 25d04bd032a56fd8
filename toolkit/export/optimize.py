"""Prepare a trained module for export: eval mode, Conv+BatchNorm folded, no training-only ops.

Folding BatchNorm into the preceding convolution removes one op per layer from the exported
graph (and one kernel per layer at inference) without changing the result beyond fp32 rounding.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_TRAINING_ONLY = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def _fold_with_fx(model: nn.Module) -> nn.Module:
    """Fold every Conv -> BN pair where the conv output feeds only the BN (any module structure)."""
    gm = torch.fx.symbolic_trace(model)
    modules = dict(gm.named_modules())
    changed = False
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), _BNS):
            continue
        prev = node.args[0]
        if not isinstance(prev, torch.fx.Node) or prev.op != "call_module":
            continue
        conv = modules.get(prev.target)
        if not isinstance(conv, _CONVS) or len(prev.users) != 1:
            continue
        bn = modules[node.target]
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        fused = fuse_conv_bn_eval(conv, bn)
        parent_name, _, attr = prev.target.rpartition(".")
        setattr(gm.get_submodule(parent_name) if parent_name else gm, attr, fused)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        changed = True
    if changed:
        gm.graph.lint()
        gm.recompile()
        gm.delete_all_unused_submodules()
    return gm


def _fold_sequential(module: nn.Module) -> None:
    """Fallback for untraceable models: fold Conv, BN neighbours inside nn.Sequential containers."""
    for child in module.children():
        _fold_sequential(child)
    if isinstance(module, nn.Sequential):
        children = list(module.named_children())
        for (a, conv), (b, bn) in zip(children, children[1:]):
            if isinstance(conv, _CONVS) and isinstance(bn, _BNS) and bn.running_mean is not None:
                setattr(module, a, fuse_conv_bn_eval(conv, bn))
                setattr(module, b, nn.Identity())


def _drop_training_only(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, _TRAINING_ONLY):
            setattr(module, name, nn.Identity())
        else:
            _drop_training_only(child)


def optimize_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference: eval mode, no grad, dropout removed, Conv+BN folded.

    Tries torch.fx first (finds pairs anywhere, e.g. ResNet blocks); a model fx cannot trace
    (data-dependent control flow) falls back to folding inside ``nn.Sequential`` only. The
    original model is left untouched.
    """
    model = copy.deepcopy(model).eval()
    _drop_training_only(model)
    try:
        optimized = _fold_with_fx(model)
    except Exception:  # noqa: BLE001 - fx raises many types on untraceable code
        optimized = model
        _fold_sequential(optimized)
    optimized.eval()
    for p in optimized.parameters():
        p.requires_grad_(False)
    return optimized


def count_batchnorms(model: nn.Module) -> int:
    """Number of BatchNorm modules still in ``model`` (what folding removes)."""
    return sum(isinstance(m, _BNS) for m in model.modules())
