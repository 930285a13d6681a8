#!/usr/bin/env python3
"""Writes a safetensors fixture with plain struct + json (not the safetensors library), so that our
TypeScript reader is checked against an independent writer.

Output (next to the models tests):
  packages/models/__tests__/fixtures/safetensors/mixed.safetensors
  packages/models/__tests__/fixtures/safetensors/mixed.expected.json

Deliberate differences from what our writer produces: the JSON uses Python's default separators (", ",
": "), "__metadata__" sits between tensors, the data is in header order rather than sorted by dtype, and
the data offsets are unaligned (a 6-byte BF16 tensor comes first), so the reader cannot rely on alignment.

Run: /usr/bin/python3 tooling/safetensors/make_fixture.py
"""
import json
import math
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', '..', 'packages', 'models', '__tests__', 'fixtures', 'safetensors')


def f32_bits(x):
    return struct.unpack('<I', struct.pack('<f', x))[0]


def f32_round(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def bf16_bits(x):
    """f32 -> bf16 with round-to-nearest-even, written out independently of the TS code."""
    b = f32_bits(x)
    if (b & 0x7fffffff) > 0x7f800000:
        return ((b >> 16) | 0x40) & 0xffff
    return ((b + 0x7fff + ((b >> 16) & 1)) >> 16) & 0xffff


def bf16_value(bits):
    return struct.unpack('<f', struct.pack('<I', bits << 16))[0]


def f16_round(x):
    return struct.unpack('<e', struct.pack('<e', x))[0]


def enc(v):
    """JSON has no NaN / Infinity: spell them as strings."""
    if isinstance(v, float):
        if math.isnan(v):
            return 'nan'
        if math.isinf(v):
            return 'inf' if v > 0 else '-inf'
    return v


# name -> (dtype, shape, struct format, stored values, expected decoded values)
bf16_in = [1.0, 3.14159, -1e-3, 65504.0, 1.00390625]  # the last is a tie: rounds to even (1.0)
f16_in = [1.0, -0.333, 65504.0, 6e-8, float('inf'), -0.0]
tensors = [
    ('model.embed.bf16', 'BF16', [5], '<5H', [bf16_bits(x) for x in bf16_in]),
    ('model.layers.0.weight', 'F32', [2, 3], '<6f', [1.5, -2.25, 0.1, 3.4e38, 1e-45, -0.0]),
    ('model.norm.f16', 'F16', [2, 3], '<6e', f16_in),
    ('token_ids', 'I32', [4], '<4i', [-2147483648, 2147483647, 0, -1]),
    ('positions', 'I64', [2, 2], '<4q', [0, 1, -7, 2147483647]),
    ('big_i64', 'I64', [1], '<q', [2 ** 40]),
    ('scalar', 'F32', [], '<f', [42.0]),
    ('empty', 'F32', [0, 4], '<0f', []),
    ('wide', 'F64', [2], '<2d', [math.pi, -1e300]),
]
metadata = {'format': 'pt', 'writer': 'tooling/safetensors/make_fixture.py'}

header = {}
data = b''
expected = {'metadata': metadata, 'tensors': {}}
for i, (name, dtype, shape, fmt, stored) in enumerate(tensors):
    blob = struct.pack(fmt, *stored)
    header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(blob)]}
    data += blob
    if i == 3:
        header['__metadata__'] = metadata
    if dtype == 'BF16':
        values = [bf16_value(b) for b in stored]
        extra = {'bits': stored}
    elif dtype == 'F16':
        values = [f16_round(x) for x in stored]
        extra = {}
    elif dtype == 'F32':
        values = [f32_round(x) for x in stored]
        extra = {}
    else:
        values = list(stored)
        extra = {}
    entry = {'dtype': dtype, 'shape': shape, 'values': [enc(v) for v in values], **extra}
    if name == 'big_i64':
        entry = {'dtype': dtype, 'shape': shape, 'error': 'does not fit in i32'}
    expected['tensors'][name] = entry

text = json.dumps(header).encode('utf-8')
text += b' ' * ((8 - len(text) % 8) % 8)
os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, 'mixed.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(text)))
    f.write(text)
    f.write(data)
with open(os.path.join(OUT, 'mixed.expected.json'), 'w') as f:
    json.dump(expected, f, indent=1)
    f.write('\n')
print('wrote', os.path.normpath(OUT), len(text) + 8 + len(data), 'bytes')
