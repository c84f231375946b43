from app.services.device import describe_jit_cache, resolve_compute_type


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
