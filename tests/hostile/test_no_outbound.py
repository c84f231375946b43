"""Nothing leaves the machine: from start-up through requests in several languages, with
OFFLINE=true and every stage on, the server makes no network connection and no DNS lookup.

Proved on the system calls (strace on the whole process tree, C libraries included:
onnxruntime's telemetry, gRPC, torch.hub), not by reading one environment variable.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.support.server import running_server

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (scripts/bootstrap.sh dev)")

_INET = re.compile(
    r'(?:connect|sendto|sendmsg)\(.*sa_family=AF_INET6?,.*?inet_(?:addr|pton)\((?:AF_INET6?, )?"([^"]+)"'
)
# A host-name lookup reads these (glibc's NSS "files" and "dns"), or asks systemd-resolved. (nscd's
# socket is not a sign: passwd lookups use it too.)
_LOOKUP = re.compile(r'openat\(.*"/etc/(hosts|resolv\.conf)"|connect\(.*sun_path="/run/systemd/resolve/')


def outbound(trace: str) -> list[str]:
    """System calls that reach past loopback, or that look a host name up."""
    found = []
    for line in trace.splitlines():
        address = m[1] if (m := _INET.search(line)) else None
        remote = address is not None and not (address.startswith("127.") or address in ("::1", "0.0.0.0", "::"))
        if remote or _LOOKUP.search(line):
            found.append(line)
    return found


def test_the_rule_sees_connections_and_lookups():
    """Lines as strace prints them (checked with getaddrinfo and UDP connects on this machine)."""
    dns = '1 connect(3, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0'
    assert outbound(dns)
    assert outbound('1 openat(AT_FDCWD, "/etc/resolv.conf", O_RDONLY|O_CLOEXEC) = 3')
    assert outbound('1 openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3')
    assert not outbound('1 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT')
    assert not outbound('1 openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3')
    v6 = '1 connect(3, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "{}",'
    assert outbound(v6.replace("{}", "2001:db8::1"))
    assert not outbound(v6.replace("{}", "::1"))
    assert not outbound('1 connect(3, {sa_family=AF_INET, sin_port=htons(8003), sin_addr=inet_addr("127.0.0.1")}, 16)')


def test_offline_server_never_reaches_out(tmp_path, sample_wav):
    trace = tmp_path / "strace.log"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "OFFLINE": "true",
        "DEVICE": "cpu",
        "WHISPER_MODEL": "bundled-base",
        "MODEL_CACHE_DIR": str(tmp_path / "models"),
        "TEMP_DIR": str(tmp_path),
        "HOME": str(home),
        "TMPDIR": str(tmp_path),
        "PRELOAD_ALIGN_LANGUAGES": '["en", "de"]',
        "HF_HUB_OFFLINE": "",  # OFFLINE alone must be enough
        "CI": "",  # onnxruntime keeps its telemetry off under CI: run as on a user's machine
        "HF_TOKEN": "",
    }
    german = tmp_path / "deutsch.wav"
    subprocess.run(
        ["espeak-ng", "-v", "de", "-w", str(german), "Guten Morgen, wie geht es Ihnen heute? Das Wetter ist schön."],
        check=True,
    )
    wrapper = (
        "strace",
        "-f",
        "-qq",
        "-e",
        "trace=connect,sendto,sendmsg,openat",
        "-e",
        "signal=none",
        "-o",
        str(trace),
    )
    requests = (
        (sample_wav, {}),  # language identified, the English aligner, diarization
        (sample_wav, {"language": "fr", "diarize": "false"}),  # a torchaudio aligner
        (german, {"language": "de"}),
        (german, {"language": "ja", "diarize": "false"}),  # a hub aligner
    )
    with (
        running_server(env, tmp_path / "server.log", timeout_s=900, wrapper=wrapper, every_stage=True) as server,
        server.client() as client,
    ):
        for path, form in requests:
            with path.open("rb") as f:
                reply = client.post("/transcribe", files={"file": (path.name, f)}, data=form)
            assert reply.status_code == 200, reply.text
        health = client.get("/health").json()
    assert "OFFLINE=true" in str(health["stages"]["alignment"]["detail"])
    calls = trace.read_text()
    assert "/app/main.py" in calls or "/app/__pycache__/main." in calls, "strace saw the server's own calls"
    assert outbound(calls) == []
    assert not (home / ".cache" / "Microsoft").exists(), "onnxruntime telemetry wrote its device id"
    assert not list(tmp_path.glob("*.ses"))
