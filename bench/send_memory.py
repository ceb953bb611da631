"""Peak memory of `smsgw send` as the CSV grows: it should not grow with it.

For each size (100,000 and 1,000,000 rows by default) a campaign CSV is written to a
temporary directory, then `smsgw send` runs as its own process and its peak RSS is read
from the kernel (wait4's ru_maxrss) when it exits:

* dry-run  - reads every row, checks numbers against the network table, counts parts;
* send     - sends every row to a real `smsgw serve --role api` on loopback (fresh SQLite
             store), writing the results file as answers arrive;
* resume   - `--resume` on the finished results file: every row is skipped, which costs
             reading both files and one byte per line of resume state.

    python bench/send_memory.py [--rows 100000,1000000] [--modes dry-run,send,resume]

Not a test: the figures go to docs/client.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

KEY = "bench-key-0123456789abcdef"
TEMPLATE = "Dear {name}, your statement for November is {amount} KES. Reply STOP to opt out."
PREFIXES = ["70", "71", "72", "79", "11", "73", "75", "78", "77"]  # Safaricom, Airtel, Telkom


def smsgw() -> list[str]:
    return [sys.executable, "-m", "smsgw"]


def write_campaign(path: Path, rows: int) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("name,mobile,amount\n")
        for i in range(rows):
            prefix = PREFIXES[i % len(PREFIXES)]
            handle.write(f"Customer {i},0{prefix}{i % 10_000_000:07d},{(i * 37) % 100_000}.00\n")


def measure(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, float, int, list[int]]:
    """Runs a command to its end: exit status, seconds, peak RSS (bytes) from the kernel,
    and RSS samples taken every 0.25 s along the way."""
    started = time.monotonic()
    process = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        try:
            watched = psutil.Process(process.pid)
            while not done.wait(0.25):
                samples.append(watched.memory_info().rss)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = process.stderr.read() if process.stderr else b""
    _, status, usage = os.wait4(process.pid, 0)
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0,):
        sys.stderr.write(stderr.decode(errors="replace")[-2000:])
    return process.returncode, time.monotonic() - started, usage.ru_maxrss * 1024, samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gateway(workdir: Path, credits: int) -> tuple[subprocess.Popen, str, dict[str, str]]:
    env = dict(os.environ, SMSGW_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}")
    for command in (["partner", "create", "bench", "--api-key", KEY, "--credits", str(credits)], ["shortcode", "add", "BENCH", "--partner", "bench"]):
        subprocess.run(smsgw() + command, env=env, cwd=workdir, check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(
        smsgw() + ["serve", "--host", "127.0.0.1", "--port", str(port), "--role", "api", "--log-level", "warning"],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        server.kill()
        raise SystemExit("smsgw serve did not start")
    client_env = dict(os.environ, SMSGW_URL=url, SMSGW_PARTNER_ID="bench", SMSGW_API_KEY=KEY, SMSGW_SHORTCODE="BENCH")
    client_env.pop("SMSGW_DATABASE_URL", None)
    return server, url, client_env


def mb(value: float) -> str:
    return f"{value / 2**20:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated CSV sizes")
    parser.add_argument("--modes", default="dry-run,send,resume", help="any of dry-run, send, resume")
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()
    sizes = [int(n) for n in options.rows.split(",")]
    modes = options.modes.split(",")

    with tempfile.TemporaryDirectory(prefix="smsgw-send-bench-") as tmp:
        workdir = Path(tmp)
        campaigns = {}
        for rows in sizes:
            path = workdir / f"campaign-{rows}.csv"
            write_campaign(path, rows)
            campaigns[rows] = path
            print(f"wrote {path.name}: {rows:,} rows, {path.stat().st_size / 2**20:,.1f} MiB")

        server = None
        client_env = dict(os.environ)
        if "send" in modes or "resume" in modes:
            server, url, client_env = start_gateway(workdir, credits=sum(sizes) * 2)
            print(f"gateway: smsgw serve --role api on {url}, SQLite store in {workdir}")
        print()
        print(f"{'mode':<8} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'peak RSS MiB':>13} {'RSS at 25/50/75% of the run':>28}  exit")
        try:
            for mode in modes:
                for rows, path in campaigns.items():
                    args = smsgw() + ["send", "--csv", str(path), "--message", TEMPLATE, "--no-progress", "--concurrency", str(options.concurrency)]
                    if mode == "dry-run":
                        args.append("--dry-run")
                    elif mode == "resume":
                        args.append("--resume")
                    status, seconds, peak, samples = measure(args, client_env, workdir)
                    # Samples along the run: flat memory means these do not climb.
                    along = " / ".join(mb(samples[len(samples) * q // 4]) for q in (1, 2, 3)) if samples else "-"
                    print(f"{mode:<8} {rows:>10,} {seconds:>8.1f} {rows / seconds:>9,.0f} {mb(peak):>13} {along:>28}  {status}")
                    if mode == "send":
                        results = path.with_name(path.stem + ".results.csv")
                        with open(results, "rb") as handle:
                            written = sum(1 for _ in handle) - 1
                        if written != rows:
                            print(f"  results file has {written:,} rows, expected {rows:,}")
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)


if __name__ == "__main__":
    main()
