# lit configuration for rsrc: each test is a small input, the commands that run it, and the
# FileCheck lines that matter. Paths to the built tools come from lit.site.cfg.py (CMake).
import os
import shutil
import subprocess
import lit.formats

config.name = 'rsrc'
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = ['.test']
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.rsrc_build_dir, 'tests', 'lit')
config.excludes = ['Inputs']

bindir = config.rsrc_build_dir
config.substitutions.append(('%rsrc', os.path.join(bindir, 'rsrc')))
config.substitutions.append(('%rsr-run', os.path.join(bindir, 'rsr-run')))
config.substitutions.append(('%rsr-tamper', os.path.join(bindir, 'tests', 'rsr-tamper')))
config.substitutions.append(('%rsr-mkmodel', os.path.join(bindir, 'rsr-mkmodel')))
config.substitutions.append(('%rsr-serve', os.path.join(bindir, 'rsr-serve')))
config.substitutions.append(('%serve-start', 'env RSR_SERVE=' + os.path.join(bindir, 'rsr-serve') + ' sh ' + os.path.join(config.test_source_root, 'Inputs', 'serve.sh')))
config.substitutions.append(('%serve-curl', 'sh ' + os.path.join(config.test_source_root, 'Inputs', 'serve_curl.sh')))
config.substitutions.append(('%serve-stop', 'sh ' + os.path.join(config.test_source_root, 'Inputs', 'serve_stop.sh')))
config.substitutions.append(('%hostile', 'python3 ' + os.path.join(config.test_source_root, 'Inputs', 'hostile.py')))
config.substitutions.append(('%json', 'python3 ' + os.path.join(config.test_source_root, 'Inputs', 'json_get.py')))
config.substitutions.append(('%mktiny', 'python3 ' + os.path.join(config.test_source_root, 'Inputs', 'mktiny.py')))
config.substitutions.append(('%bindir', bindir))
config.substitutions.append(('%completion', os.path.join(config.test_source_root, '..', '..', 'tools', 'completion', 'rsr.bash')))
# the float references of tests/gguf (*_model.py, prism_fold.py): the python3 tests/gguf/python.sh
# picks for their scripts (one with numpy where there is one)
ref_python = subprocess.run(['sh', '-c', '. "$1" && echo "$py"', 'sh',
                             os.path.join(config.test_source_root, '..', 'gguf', 'python.sh')],
                            stdout=subprocess.PIPE, text=True).stdout.strip() or 'python3'
config.substitutions.append(('%refpy', ref_python))
config.substitutions.append(('%mkspm', 'python3 ' + os.path.join(config.test_source_root, 'Inputs', 'mkspm.py')))
config.environment['PATH'] = os.pathsep.join([config.llvm_tools_dir, config.environment.get('PATH', '')])
if os.path.isdir(os.path.join(bindir, 'man')):
    config.available_features.add('man-pages')
for var in ['TMPDIR', 'HOME']:
    if var in os.environ:
        config.environment[var] = os.environ[var]
# OpenMP threads sleep when they wait: lit runs tests side by side (tests/CMakeLists.txt says why)
config.environment['OMP_WAIT_POLICY'] = os.environ.get('OMP_WAIT_POLICY', 'passive')

# A CPU feature this machine lacks, which gcc and LLVM both know: what the load-time CPU check is
# tested with (the first of these absent from /proc/cpuinfo's flags).
try:
    with open('/proc/cpuinfo') as f:
        cpu_flags = next((l.split(':', 1)[1].split() for l in f if l.startswith('flags')), [])
    for feature, flag in [('avx512fp16', 'avx512_fp16'), ('amx-tile', 'amx_tile'), ('avx512f', 'avx512f')]:
        if flag not in cpu_flags:
            config.available_features.add('cpu-lacks-feature')
            config.substitutions.append(('%missing-feature', feature))
            break
    if 'avx_vnni' not in cpu_flags:
        config.available_features.add('cpu-lacks-avxvnni')
    if 'avx512_vnni' in cpu_flags and 'avx512bw' in cpu_flags:
        config.available_features.add('cpu-avx512vnni')
except OSError:
    pass

# AArch64: the cross build of scripts/cross.sh (beside the source tree) and qemu-user run its programs.
cross_run = os.path.join(os.path.dirname(os.path.dirname(config.test_source_root)), 'build-aarch64', 'rsr-run')
if os.path.exists(cross_run) and shutil.which('qemu-aarch64'):
    config.available_features.add('aarch64-qemu')
    config.substitutions.append(('%qemu-aarch64', 'qemu-aarch64 -L /'))
    config.substitutions.append(('%aarch64-rsr-run', cross_run))
    config.substitutions.append(('%aarch64-runtime', os.path.join(os.path.dirname(cross_run), 'librsr_runtime.a')))
elif os.environ.get('RSRC_REQUIRE_CROSS'):
    lit_config.fatal('RSRC_REQUIRE_CROSS is set but there is no %s and qemu-aarch64 (scripts/cross.sh aarch64)' % cross_run)

if os.getuid() != 0:
    config.available_features.add('non-root')
if getattr(config, 'rsrc_sanitize', ''):
    config.available_features.add('sanitized')

# CUDA: ptxas validates PTX offline; NVRTC (loaded by rsrc) makes PTX; a driver with a device
# runs it (probed the way the runtime loads it: tests needing it are UNSUPPORTED elsewhere).
ptxas = shutil.which('ptxas', path=config.cuda_bin_dir) or shutil.which('ptxas')
if ptxas:
    config.available_features.add('ptxas')
    config.substitutions.append(('%ptxas', ptxas))
import ctypes, subprocess
for name in ['libnvrtc.so.13', 'libnvrtc.so.12', 'libnvrtc.so']:
    try:
        ctypes.CDLL(name)
        config.available_features.add('nvrtc')
        break
    except OSError:
        pass
probe = os.path.join(bindir, 'tests', 'rsr-cuda-probe')
if os.path.exists(probe) and subprocess.run([probe], capture_output=True).returncode == 0:
    config.available_features.add('cuda-driver')
