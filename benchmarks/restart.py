"""W5 restart: a stateful agent that crashes on every task, restarted by its supervisor.

overstory: one goal; a tactical team whose only member is an ``ov.Agent`` (one
instance, ``Restart.PERMANENT``, no backoff) whose ``handle()`` always raises; the team
retries the step up to ``restarts`` attempts with no backoff, no breaker and no
intensity limit, so every attempt is delivered to a freshly restarted instance
(``stop()``, then a new instance's ``start()``). Reports µs per restart,
timed from the goal's submission until the last restart is complete.

bare trio: one task loops ``restarts`` times: call the instance's handler, which
raises; catch it; ``await stop()`` the instance, make a new one and ``await start()``.

trio-supervisor (not in the suite; a reference for the design, not a baseline): the
cheapest bare-trio form of "restarted by its supervisor", with no failure record, no
retry decision and no events. A supervisor task owns the instance: it starts it (bounded
by a deadline), hands it to the calling task, and on a crash stops it (shielded, bounded
by a deadline) and starts a new one; the tasks hand over with trio's low-level
park/reschedule. ``--unbounded`` drops the two deadlines. Its ratio to bare trio is the
part of overstory's that any implementation of this design pays on trio.

Run one measurement: ``python -m benchmarks.restart SYSTEM [--restarts N]``.
"""

from __future__ import annotations

import argparse
import gc
import time

import trio

from benchmarks._common import emit

SYSTEMS = ("trio", "overstory", "trio-supervisor")


class Crash(Exception):
    """What the agent raises on every task."""


class Worker:
    """The bare-trio sides' agent: a checkpoint to start and to stop; crashes on every
    task."""

    async def start(self) -> None:
        await trio.lowlevel.checkpoint()

    async def handle(self, task: int) -> int:
        raise Crash(f"task {task}")

    async def stop(self) -> None:
        await trio.lowlevel.checkpoint()


def run_trio(args: argparse.Namespace) -> tuple[float, int]:
    import trio

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


def run_trio_supervisor(args: argparse.Namespace) -> tuple[float, int]:
    import trio

    bounded = not args.unbounded
    free: list[Worker] = []  # the started instance, while no caller holds it
    parked: dict[str, trio.lowlevel.Task] = {}  # "caller" / "supervisor", while waiting
    restarts = 0
    seconds = 0.0

    def abort(_: object) -> trio.lowlevel.Abort:
        return trio.lowlevel.Abort.SUCCEEDED

    async def park(role: str) -> None:
        parked[role] = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(abort)

    def wake(role: str) -> None:
        task = parked.pop(role, None)
        if task is not None:
            trio.lowlevel.reschedule(task)

    async def supervisor() -> None:
        nonlocal restarts
        while True:
            worker = Worker()
            if bounded:
                with trio.fail_after(60.0):
                    await worker.start()
            else:
                await worker.start()
            free.append(worker)
            wake("caller")
            await park("supervisor")  # until the caller reports a crash
            if bounded:
                with trio.CancelScope(shield=True, deadline=trio.current_time() + 5.0):
                    await worker.stop()
            else:
                await worker.stop()
            restarts += 1

    async def main() -> None:
        nonlocal seconds
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor)
            while not free:
                await trio.lowlevel.checkpoint()
            start = time.perf_counter()
            for task in range(args.restarts):
                if not free:
                    await park("caller")
                worker = free.pop()
                try:
                    await worker.handle(task)
                except Crash:
                    wake("supervisor")
            while not (restarts >= args.restarts and free):
                await trio.lowlevel.checkpoint()  # the last restart may still be under way
            seconds = time.perf_counter() - start
            nursery.cancel_scope.cancel()

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


RUNNERS = {"trio": run_trio, "overstory": run_overstory, "trio-supervisor": run_trio_supervisor}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("system", choices=SYSTEMS)
    p.add_argument("--restarts", type=int, default=5000)
    p.add_argument(
        "--unbounded",
        action="store_true",
        help="trio-supervisor: start() and stop() without deadlines",
    )
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
        **({"bounded": not args.unbounded} if args.system == "trio-supervisor" else {}),
    )


if __name__ == "__main__":
    main()
