"""What a benchmark ran on (cores, CPU model, native bf16, load) and a timer, shared by the benchmark scripts."""

import os
import platform
import time
from pathlib import Path


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_summary():
    """One line: cores, CPU model, native bf16 or not, load average, TensorFlow and Keras versions."""
    import keras
    import tensorflow as tf

    from labkit.runtime import cpu_has_bf16

    gpus = tf.config.list_physical_devices("GPU")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {os.cpu_count()} cores, {cpu_model()}, bf16 {'native' if cpu_has_bf16() else 'NOT native'}"
            f" (amx_bf16/avx512_bf16 in /proc/cpuinfo), {len(gpus)} GPU(s); load average {load:.1f} at start; "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}")


def load_warning():
    """A note when other processes keep the CPU busy (1-minute load average above the core count)."""
    load, cores = (os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0), os.cpu_count() or 1
    if load > cores:
        return (f"note: load average {load:.1f} on {cores} cores — other processes shared the CPU, so timings are "
                f"noisy (ratios of variants timed in the same run are steadier than absolute numbers)")
    return f"load average {load:.1f} on {cores} cores"


def rate(step, n_steps, items_per_step):
    """Items per second of `n_steps` calls of `step()`."""
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    return n_steps * items_per_step / (time.perf_counter() - start)
