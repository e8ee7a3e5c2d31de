"""W5 restart: a stateful agent that crashes on every task, restarted by its supervisor.

overstory: one goal; a tactical team whose only member is an ``ov.Agent`` (one
instance, ``Restart.PERMANENT``, no backoff) whose ``handle()`` always raises; the team
retries the step up to ``restarts`` attempts with no backoff, no breaker and no
intensity limit, so every attempt is delivered to a freshly restarted instance
(``stop()``, then a new instance's ``start()``). Reports µs per restart,
timed from the goal's submission until the last restart is complete.

bare trio: one task loops ``restarts`` times: call the instance's handler, which
raises; catch it; ``await stop()`` the instance, make a new one and ``await start()``.

Run one measurement: ``python -m benchmarks.restart SYSTEM [--restarts N]``.
"""

from __future__ import annotations

import argparse
import gc
import time

from benchmarks._common import emit

SYSTEMS = ("trio", "overstory")


class Crash(Exception):
    """What the agent raises on every task."""


def run_trio(args: argparse.Namespace) -> tuple[float, int]:
    import trio

    class Worker:
        async def start(self) -> None:
            await trio.lowlevel.checkpoint()

        async def handle(self, task: int) -> int:
            raise Crash(f"task {task}")

        async def stop(self) -> None:
            await trio.lowlevel.checkpoint()

    restarts = 0
    seconds = 0.0

    async def main() -> None:
        nonlocal restarts, seconds
        worker = Worker()
        await worker.start()
        start = time.perf_counter()
        for task in range(args.restarts):
            try:
                await worker.handle(task)
            except Crash:
                await worker.stop()
                worker = Worker()
                await worker.start()
                restarts += 1
        seconds = time.perf_counter() - start

    trio.run(main)
    return seconds, restarts


def run_overstory(args: argparse.Namespace) -> tuple[float, int]:
    import trio

    import overstory as ov

    class Crasher(ov.Agent):
        """Crashes on every task."""

        restart = ov.Restart.PERMANENT
        backoff = ov.Backoff(initial=0.0, cap=0.0, jitter=0.0)

        async def start(self) -> None:
            await trio.lowlevel.checkpoint()

        async def handle(self, task: ov.Task, ctx: ov.Context) -> None:
            raise Crash(f"attempt {ctx.attempt}")

        async def stop(self) -> None:
            await trio.lowlevel.checkpoint()

    team = ov.Tactical(
        "team",
        "Runs the crashing agent",
        children=[Crasher],
        retry=ov.Retry(
            attempts=args.restarts, backoff=ov.Backoff(initial=0.0, cap=0.0, jitter=0.0)
        ),
        intensity=ov.Intensity(max_failures=10**9),
        breaker=None,
    )
    tree = ov.Tree("restart", team)
    restarts = 0
    seconds = 0.0

    async def main() -> None:
        nonlocal restarts, seconds
        async with tree.running() as runner:
            start = time.perf_counter()
            handle = await runner.submit("crash", input=None)
            outcome = await handle.outcome()
            assert outcome.status is ov.Status.FAILED
            # The last crash's restart may still be under way: wait for the instance.
            while True:
                (health,) = [h for h in runner.health() if h.path == "restart/team/Crasher"]
                if (health.restarts or 0) >= args.restarts and health.live == 1:
                    break
                await trio.lowlevel.checkpoint()
            seconds = time.perf_counter() - start
            restarts = health.restarts or 0

    trio.run(main)
    return seconds, restarts


RUNNERS = {"trio": run_trio, "overstory": run_overstory}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("system", choices=SYSTEMS)
    p.add_argument("--restarts", type=int, default=5000)
    args = p.parse_args(argv)
    gc.collect()
    # Timed inside trio.run, from the first task to the last restart (start-up excluded).
    seconds, restarts = RUNNERS[args.system](args)
    assert restarts == args.restarts, restarts
    emit(
        "W5",
        args.system,
        seconds=seconds,
        restarts=restarts,
        us_per_restart=seconds / restarts * 1e6,
    )


if __name__ == "__main__":
    main()
