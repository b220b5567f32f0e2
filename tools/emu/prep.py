#!/usr/bin/env python3
"""Rewrite one ember kernels/*.cu file into C++ the host compiler accepts against fake/cuda_runtime.h.

Two rewrites, nothing else:
  extern __shared__ float NAME[];        ->  float *NAME = (float *)emu::tl.smem;   (dynamic smem)
  launch_kernel(KERNEL<TPL>, ...)        ->  launch_kernel(emu::named("KERNEL", &KERNEL<TPL>), ...)
(kernels/pdl.cuh's launch_kernel is the one launch path; the name is what EMU_KERNEL_TIMES
matches, see fake/cuda_runtime.h) and one check: every __global__ kernel's first statement is
pdl_begin(), the grid-dependency wait that makes programmatic dependent launch safe
(kernels/pdl.cuh).

usage: prep.py IN.cu OUT.cc
Fails (exit 1) on constructs it does not know how to rewrite, rather than emitting wrong code.
"""
import re
import sys

path = sys.argv[1]
src = open(path).read()
src = re.sub(r'extern __shared__ float (\w+)\[\];', r'float *\1 = (float *)emu::tl.smem;', src)
if 'extern __shared__' in src:
    sys.exit(f'{path}: extern __shared__ of a type other than float[] is not handled by prep.py')
if '<<<' in src:
    sys.exit(f'{path}: a <<<>>> launch: launch through ember_cuda::launch_kernel (kernels/pdl.cuh)')


def strip_comments(s):
    s = re.sub(r'/\*.*?\*/', ' ', s, flags=re.S)
    return re.sub(r'//[^\n]*', ' ', s)


# every kernel begins with pdl_begin(); (preprocessor lines before it are allowed)
code = strip_comments(src)
for m in re.finditer(r'__global__[^{;]*\{', code):
    body = code[m.end():]
    body = re.sub(r'\A(\s*#[^\n]*\n)*', '', body)
    if not body.lstrip().startswith('pdl_begin();'):
        head = ' '.join(m.group(0).split())[:120]
        sys.exit(f'{path}: kernel "{head}" does not begin with pdl_begin(); (kernels/pdl.cuh)')

total = len(re.findall(r'\blaunch_kernel\(', src))
pat = re.compile(r'\blaunch_kernel\(\s*(([A-Za-z_]\w*)(?:<[^<>;()]*>)?)\s*,', re.S)
src, n = pat.subn(lambda m: f'launch_kernel(emu::named("{m.group(2)}", &{m.group(1)}),', src)
if n != total:
    sys.exit(f'{path}: rewrote {n} of {total} kernel launches; prep.py needs extending')
open(sys.argv[2], 'w').write(src)
