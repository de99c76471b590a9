"""FoodVision Mini served over HTTP against its model alone: side by side, in one run.

    python benchmarks/serving.py [--app demos/foodvision_mini] [--clients 1,8,16] [--seconds 5] [--rounds 1]
                                 [--setting "FOODVISION_BATCH=1 FOODVISION_THREADS=1"] ... [--json out.json]

Each app folder (`--app`, repeatable; default the lesson's `demos/foodvision_mini`) is started as
its own process, `python app.py`, on a free loopback port, once per `--setting` (environment
variables for the app, repeatable; default: the app's own defaults). Then:

- one photo (the app's first example, or `--image`) is uploaded once (`POST /gradio_api/upload`)
  and that upload is reused by every request, so the bytes are sent once;
- for each number of concurrent clients (`--clients`), that many clients each send a request,
  wait for its answer, and send the next, for `--seconds` after a short warm-up. A request is
  what a program calling the app does: `POST /gradio_api/call/predict` (the queue answers with an
  event id), then `GET /gradio_api/call/predict/<event id>`, an event stream read until its
  `complete` event. Each client keeps one Gradio session (a `session_hash`) for all its requests,
  as a browser tab or `gradio_client.Client` does (`--session-per-request` starts a new session
  for every request instead, which costs the server more). The clients are coroutines of one
  asyncio loop in this process;
- printed per level: requests per second (requests answered inside the timed window / its seconds;
  the answers still on their way when it closes are awaited, and checked for errors, but not counted), p50 and p95 of the
  request latency, how many requests failed, and the CPU time the server and the clients used per
  request (user + system, all threads): where that time goes, whatever share of the cores the
  benchmark got. From those two the summary gives a ceiling: the most requests per second the
  machine's cores could answer if every core did nothing but this work (cores x 1000 / CPU ms per
  request, server and clients together), and the share of it that was reached.

All servers run for the whole benchmark and are driven one at a time; with `--rounds N` every
server's levels are driven N times in turn, so a change in the machine's load hits every setting,
and the summary gives the median over rounds.

The model alone is measured in this process, in the same run: the app's own
`FoodVisionMini.predict(path)` called back to back on the same photo (file in, probabilities out,
one call at a time, no batching), at each onnxruntime thread count in `--model-threads`, before
every round and after the last. The ratio printed is served requests/s over the faster of those. The load average (other programs on the machine) is printed at the start and
the end: on a shared machine, compare rows of one run, not runs.

Bounded in time: every level stops sending at `--seconds`; answers still missing
`--grace` seconds later are counted as failed; a server that does not start within `--startup`
seconds is an error.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demos" / "foodvision_mini"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(app_dir: Path, env_settings: dict[str, str], startup_s: float):
    """`python app.py` in `app_dir` on a free loopback port, always stopped afterwards.

    Yields (URL, process, ready): the process is started at once; `ready()` waits until it answers
    (so that several servers can start side by side).
    """
    port = free_port()
    env = {**os.environ, "PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **env_settings}
    env.pop("GRADIO_SERVER_PORT", None)
    log = tempfile.NamedTemporaryFile("w+", prefix="serving_", suffix=".log", delete=False)
    process = subprocess.Popen([sys.executable, "app.py"], cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_s

    def ready() -> None:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{app_dir}/app.py exited with {process.returncode}:\n{Path(log.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within {startup_s:.0f} s:\n{Path(log.name).read_text()[-2000:]}")
            time.sleep(0.3)

    try:
        yield url, process, ready
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        log.close()
        Path(log.name).unlink(missing_ok=True)


async def upload(client, url: str, image: Path) -> dict:
    """Upload the photo once; the FileData that every request then refers to."""
    response = await client.post(f"{url}/gradio_api/upload",
                                 files={"files": (image.name, image.read_bytes(), "application/octet-stream")})
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": image.name, "meta": {"_type": "gradio.FileData"}}


async def call(client, url: str, api: str, payload: dict, session: str | None = None) -> list:
    """One request as a program makes it: POST /gradio_api/call/<api>, then read its event stream.

    `session`: the Gradio session hash the request belongs to; None lets the server start a new one.
    """
    body = {"data": [payload]} if session is None else {"data": [payload], "session_hash": session}
    response = await client.post(f"{url}/gradio_api/call/{api}", json=body)
    response.raise_for_status()
    event_id = response.json()["event_id"]
    event = None
    async with client.stream("GET", f"{url}/gradio_api/call/{api}/{event_id}") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                if event == "error":
                    raise RuntimeError(f"the app answered with an error: {line[5:].strip()}")
                return json.loads(line[5:])
    raise RuntimeError(f"the event stream of {event_id} ended without a complete event")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def drive(url: str, server_pid: int, image: Path, levels: list[int], seconds: float, warmup_s: float,
                grace_s: float, api: str, session_per_request: bool = False) -> list[dict]:
    """Requests/s, latency percentiles and CPU time per request for each number of concurrent clients."""
    import httpx

    limits = httpx.Limits(max_connections=2 * max(levels) + 4, max_keepalive_connections=2 * max(levels) + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(seconds + grace_s + 30), limits=limits) as client:
        payload = await upload(client, url, image)
        answer = await call(client, url, api, payload)  # the first answer also checks that the app works
        rows = []
        for clients in levels:
            latencies, failures = [], []
            phase = {"timing": False, "stop": False}

            async def one_client():
                session = None if session_per_request else uuid.uuid4().hex[:11]  # one per client, like a browser tab
                while not phase["stop"]:
                    start = time.perf_counter()
                    try:
                        await call(client, url, api, payload, session)
                    except Exception as error:  # noqa: BLE001 - a failed request is a result, counted below
                        if phase["timing"]:
                            failures.append(repr(error))
                        continue
                    if phase["timing"] and not phase["stop"]:  # answered inside the timed window: counted
                        latencies.append(time.perf_counter() - start)

            tasks = [asyncio.create_task(one_client()) for _ in range(clients)]
            await asyncio.sleep(warmup_s)
            phase["timing"] = True
            started, server_cpu, client_cpu = time.perf_counter(), cpu_seconds(server_pid), time.process_time()
            await asyncio.sleep(seconds)
            phase["stop"] = True
            elapsed = time.perf_counter() - started
            server_cpu, client_cpu = cpu_seconds(server_pid) - server_cpu, time.process_time() - client_cpu
            done, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
                failures.append("no answer within the grace period")
            p50, p95 = np.percentile(latencies, [50, 95]) if latencies else (float("nan"), float("nan"))
            answered = max(len(latencies), 1)
            rows.append({"clients": clients, "requests": len(latencies), "failed": len(failures),
                         "per_s": len(latencies) / elapsed, "p50_ms": 1000 * float(p50), "p95_ms": 1000 * float(p95),
                         "mean_ms": 1000 * float(np.mean(latencies)) if latencies else float("nan"),
                         "server_cpu_ms": 1000 * server_cpu / answered, "client_cpu_ms": 1000 * client_cpu / answered})
        return rows, answer


def model_alone(app_dir: Path, image: Path, threads: int, seconds: float) -> dict:
    """The app's own model class in this process: predict(path) back to back, one call at a time."""
    sys.path.insert(0, str(app_dir))
    try:
        import model as app_model  # the app's model.py
    finally:
        sys.path.pop(0)
    try:  # one call at a time: no batching (an app folder from before batching has no `batch` argument)
        model = app_model.FoodVisionMini(app_dir / "foodvision_mini.onnx", threads=threads, batch=1)
    except TypeError:
        model = app_model.FoodVisionMini(app_dir / "foodvision_mini.onnx", threads=threads)
    for _ in range(5):
        model.predict(image)
    times, end, cpu = [], time.perf_counter() + seconds, time.process_time()
    while time.perf_counter() < end:
        start = time.perf_counter()
        model.predict(image)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    p50, p95 = np.percentile(times, [50, 95])
    return {"threads": threads, "predictions": len(times), "per_s": len(times) / sum(times),
            "p50_ms": 1000 * float(p50), "p95_ms": 1000 * float(p95), "cpu_ms": 1000 * cpu / len(times)}


def ceiling_per_s(cpu_ms_per_request: float, cores: int | None = None) -> float:
    """The most requests/s `cores` could answer if each request costs this much CPU and nothing else runs."""
    return (cores or os.cpu_count() or 1) * 1000.0 / cpu_ms_per_request


def parse_setting(text: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in shlex.split(text)]
    if not all(len(pair) == 2 and pair[0] for pair in pairs):
        raise SystemExit(f"--setting {text!r}: expected KEY=VALUE pairs, e.g. 'FOODVISION_BATCH=1 FOODVISION_THREADS=2'")
    return dict(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--app", action="append", type=Path, help=f"app folder(s) to serve (default {DEMO})")
    parser.add_argument("--setting", action="append", default=None,
                        help="environment for the app, e.g. 'FOODVISION_BATCH=1' (repeatable; default: none)")
    parser.add_argument("--clients", default="1,8,16", help="concurrent clients per level")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per level")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; each runs every server's levels in turn")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds before each level")
    parser.add_argument("--grace", type=float, default=15.0, help="seconds to wait for answers after a level")
    parser.add_argument("--startup", type=float, default=120.0, help="seconds the app may take to start")
    parser.add_argument("--model-threads", default="1,2", help="onnxruntime threads for the model-alone runs")
    parser.add_argument("--model-app", type=Path, default=None,
                        help="the app folder whose model.py the model-alone runs use (default: the last --app)")
    parser.add_argument("--image", type=Path, default=None, help="the photo to send (default: the first example)")
    parser.add_argument("--api", default="predict", help="the app's api_name")
    parser.add_argument("--session-per-request", action="store_true",
                        help="start a new Gradio session for every request (default: one session per client)")
    parser.add_argument("--json", type=Path, default=None, help="also write every row to this JSON file")
    args = parser.parse_args()

    apps = [Path(p).resolve() for p in (args.app or [DEMO])]
    for app_dir in apps:
        if not (app_dir / "foodvision_mini.onnx").is_file():
            raise SystemExit(f"{app_dir}/foodvision_mini.onnx is missing: run lesson 09 first "
                             "(`python -m course run --only 09`).")
    image = args.image or sorted((apps[0] / "examples").glob("*.jpg"))[0]
    levels = [int(n) for n in args.clients.split(",")]
    thread_counts = [int(n) for n in args.model_threads.split(",")]
    settings = [parse_setting(s) for s in (args.setting or [""])]
    model_app = (args.model_app or apps[-1]).resolve()
    print(f"photo: {image.name} | cores: {os.cpu_count()} | load average at start: "
          + " ".join(f"{v:.2f}" for v in os.getloadavg()), flush=True)

    alone = {t: [] for t in thread_counts}
    results, answer = [], None
    with contextlib.ExitStack() as stack:  # every server runs for the whole benchmark; one is driven at a time
        servers = []
        for app_dir in apps:
            for setting in settings:
                label = f"{app_dir.name} {' '.join(f'{k}={v}' for k, v in setting.items())}".strip()
                servers.append((label, *stack.enter_context(served(app_dir, setting, args.startup))))
        for _, _, _, ready in servers:  # all started side by side; wait until each answers
            ready()
        servers = [(label, url, process) for label, url, process, _ in servers]
        for round_ in range(1, args.rounds + 1):
            for t in thread_counts:
                alone[t].append(model_alone(model_app, image, t, args.seconds))
            for label, url, process in servers:
                rows, answer = asyncio.run(drive(url, process.pid, image, levels, args.seconds, args.warmup,
                                                 args.grace, args.api, args.session_per_request))
                for row in rows:
                    row["ceiling_per_s"] = ceiling_per_s(row["server_cpu_ms"] + row["client_cpu_ms"])
                    results.append({"app": label, "round": round_, **row})
                    print(f"round {round_} {label:<44} {row['clients']:>3} clients: {row['per_s']:6.1f} requests/s, "
                          f"p50 {row['p50_ms']:6.1f} ms, p95 {row['p95_ms']:6.1f} ms ({row['requests']} answered, "
                          f"{row['failed']} failed); CPU per request: server {row['server_cpu_ms']:.1f} ms, "
                          f"client {row['client_cpu_ms']:.1f} ms", flush=True)
        for t in thread_counts:
            alone[t].append(model_alone(model_app, image, t, args.seconds))
    best = 0.0
    for t, runs in alone.items():
        per_s = statistics.median(r["per_s"] for r in runs)
        best = max(best, per_s)
        print(f"model alone, {t} thread(s): {per_s:6.1f} predictions/s (median of {len(runs)} runs: "
              + ", ".join(f"{r['per_s']:.1f}" for r in runs) + f"); p50 {statistics.median(r['p50_ms'] for r in runs):.1f} ms; "
              f"CPU per prediction {statistics.median(r['cpu_ms'] for r in runs):.1f} ms")
    print(f"summary (median over {args.rounds} round(s)):")
    for label, *_ in servers:
        for clients in levels:
            rows = [r for r in results if r["app"] == label and r["clients"] == clients]
            per_s = statistics.median(r["per_s"] for r in rows)
            cpu_ms = statistics.median(r["server_cpu_ms"] + r["client_cpu_ms"] for r in rows)
            ceiling = ceiling_per_s(cpu_ms)
            print(f"  {label:<44} {clients:>3} clients: {per_s:6.1f} requests/s = {per_s / best:.2f}x the model alone "
                  f"({best:.1f}/s); p50 {statistics.median(r['p50_ms'] for r in rows):.1f} ms, "
                  f"p95 {statistics.median(r['p95_ms'] for r in rows):.1f} ms; CPU {cpu_ms:.1f} ms per request "
                  f"(server + clients): the {os.cpu_count()} cores could answer at most {ceiling:.1f}/s, "
                  f"{per_s / ceiling:.0%} of it reached")
    print("load average at the end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    if args.json:
        args.json.write_text(json.dumps({"served": results, "model_alone": alone, "answer": answer,
                                         "loadavg_end": os.getloadavg()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
