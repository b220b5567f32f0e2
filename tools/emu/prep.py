#!/usr/bin/env python3
"""Rewrite one ember kernels/*.cu file into C++ the host compiler accepts against fake/cuda_runtime.h.

Two rewrites, nothing else:
  extern __shared__ float NAME[];        ->  float *NAME = (float *)emu::tl.smem;   (dynamic smem)
  KERNEL<TPL><<<grid, block, smem, st>>>(args)  ->  emu::launch("KERNEL", &KERNEL<TPL>, grid, block, smem, st, args)
(the name is what EMU_KERNEL_TIMES matches, see fake/cuda_runtime.h)

usage: prep.py IN.cu OUT.cc
Fails (exit 1) on constructs it does not know how to rewrite, rather than emitting wrong code.
"""
import re
import sys

src = open(sys.argv[1]).read()
src = re.sub(r'extern __shared__ float (\w+)\[\];', r'float *\1 = (float *)emu::tl.smem;', src)
if 'extern __shared__' in src:
    sys.exit(f'{sys.argv[1]}: extern __shared__ of a type other than float[] is not handled by prep.py')
total = src.count('<<<')
pat = re.compile(r'(([A-Za-z_]\w*)(?:<[^<>;()]*>)?)\s*<<<(.+?)>>>\s*\(', re.S)
src, n = pat.subn(lambda m: f'emu::launch("{m.group(2)}", &{m.group(1)}, {m.group(3)}, ', src)
if n != total:
    sys.exit(f'{sys.argv[1]}: rewrote {n} of {total} kernel launches; prep.py needs extending')
open(sys.argv[2], 'w').write(src)
