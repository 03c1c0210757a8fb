"""Exact tl.dot building blocks for integer-valued attention tiles (see _launch.py).

OP (operand kind): 0 fp16, 1 bf16, 2 IEEE fp32. ACC (fp32 accumulator operand): 0 one
operand, 1 hi/lo split, 2 IEEE fp32 dot. All products accumulate in fp32.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def to_operand(x, OP: tl.constexpr):
    """A loaded tile as a dot operand of kind OP (through fp32: bf16 loads under the
    interpreter are only correct once converted to fp32)."""
    x = x.to(tl.float32)
    if OP == 0:
        return x.to(tl.float16)
    elif OP == 1:
        return x.to(tl.bfloat16)
    else:
        return x


@triton.jit
def dot(a, b, OP: tl.constexpr):
    """a @ b for operands of kind OP, fp32 accumulation."""
    if OP == 2:
        return tl.dot(a, b, input_precision="ieee")
    else:
        return tl.dot(a, b)


@triton.jit
def _split(x, OP: tl.constexpr):
    """(hi, lo) with x = hi * base + lo, 0 <= lo < base; base = 2048 (fp16) or 256 (bf16)."""
    if OP == 0:
        inv = 0.00048828125  # 1 / 2048, exact
        base = 2048.0
    else:
        inv = 0.00390625     # 1 / 256, exact
        base = 256.0
    hi = tl.floor(x * inv)   # a multiplication by 2**-k: exact, no approximate division
    lo = x - hi * base
    return hi, lo


@triton.jit
def dot_acc_rhs(a, b32, OP: tl.constexpr, ACC: tl.constexpr):
    """a @ b32 with a an operand of kind OP and b32 an fp32 tile of integers."""
    if ACC == 0:
        return dot(a, to_operand(b32, OP), OP)
    elif ACC == 1:
        hi, lo = _split(b32, OP)
        base = 2048.0 if OP == 0 else 256.0
        return dot(a, to_operand(hi, OP), OP) * base + dot(a, to_operand(lo, OP), OP)
    else:
        return tl.dot(a.to(tl.float32), b32, input_precision="ieee")


@triton.jit
def dot_acc_lhs(a32, b, OP: tl.constexpr, ACC: tl.constexpr):
    """a32 @ b with a32 an fp32 tile of integers and b an operand of kind OP."""
    if ACC == 0:
        return dot(to_operand(a32, OP), b, OP)
    elif ACC == 1:
        hi, lo = _split(a32, OP)
        base = 2048.0 if OP == 0 else 256.0
        return dot(to_operand(hi, OP), b, OP) * base + dot(to_operand(lo, OP), b, OP)
    else:
        return tl.dot(a32, b.to(tl.float32), input_precision="ieee")
