import threading

from app.runtime.device import describe_jit_cache, resolve_compute_type
from tests.support.waiting import wait_for


def test_jit_cache_is_measured_where_the_process_points_it(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"x" * 100)
    (tmp_path / "sub" / "b.bin").write_bytes(b"y" * 50)
    monkeypatch.setenv("CUDA_CACHE_PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_FORCE_PTX_JIT", "0")
    monkeypatch.delenv("CUDA_CACHE_DISABLE", raising=False)
    info = describe_jit_cache()
    assert (info.path, info.size_bytes, info.files) == (str(tmp_path), 150, 2)
    assert info.environment["CUDA_FORCE_PTX_JIT"] == "0"
    assert info.environment["CUDA_CACHE_DISABLE"] is None


def test_defaults_on_a_cpu_machine():
    assert resolve_compute_type("auto", "cpu") == "int8"
    assert resolve_compute_type("auto", "cuda") == "float16"
    assert resolve_compute_type("int8_float16", "cuda") == "int8_float16"


def test_gpu_memory_is_sampled_off_the_caller_s_thread(monkeypatch):
    from app.runtime import device

    calls: list[str] = []
    sample = device.GpuMemory(used_mb=1.0, torch_allocated_mb=0.5, torch_reserved_mb=0.75)

    def fake_gpu_memory():
        calls.append(threading.current_thread().name)
        return sample

    monkeypatch.setattr(device, "gpu_memory", fake_gpu_memory)
    sampler = device.GpuMemorySampler(period_s=0.01)
    assert sampler.latest() is None  # nothing read before it starts
    sampler.start()
    wait_for(lambda: sampler.latest() is not None, 30, "the sampler's first reading")
    sampler.close()
    assert sampler.latest() == sample
    assert set(calls) == {"gpu-memory"}
