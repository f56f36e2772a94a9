"""The stage in force and its hot reload: the service starts with whatever is built and picks
up a newly built pair model without a restart (a watcher reads the model folder's metadata
every ``reload_s`` and swaps a new build in whole). Judging runs in a thread of its own, so a
model's milliseconds never block the event loop."""

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from index.decision.judges import Judge, JudgedPair, PairModelJudge, StageName, VerifierJudge
from index.decision.pair_model import PairModel

log = logging.getLogger(__name__)


class DecisionStage:
    """The judge in force (None: the static threshold), and its hot reload."""

    def __init__(
        self,
        pair_model_dir: Path | None,
        fallback: Judge | None,
        reload_s: float = 5.0,
        threads: int | None = None,
        only_if_better: bool = True,
    ) -> None:
        self.pair_model_dir = pair_model_dir
        # put a built model in force only when its build found it beats the static threshold
        # at the same recall on the tune pairs (DYNACACHE_PAIR_MODEL=auto); =on: whenever built
        self.only_if_better = only_if_better
        self.pair_model_note = "not built"
        self.fallback = fallback
        self.reload_s = reload_s
        self.threads = threads
        self.judge: Judge | None = fallback
        self.loaded_built_at: float | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge")
        self._watcher: asyncio.Task[None] | None = None

    @property
    def name(self) -> StageName:
        return self.judge.name if self.judge is not None else "static"

    def describe(self) -> dict[str, object]:
        judge = self.judge
        described: dict[str, object] = {"stage": self.name}
        if judge is not None:
            described |= {"radius": judge.radius, "cut": judge.cut}
        if isinstance(judge, PairModelJudge):
            meta = judge.model.meta
            described["serve_below"] = judge.model.serve_below
            described["version"] = meta.get("version")
            described["built_at"] = meta.get("built_at")
            described["tune"] = meta.get("tune")
            described["dev"] = meta.get("dev")
        elif isinstance(judge, VerifierJudge):
            described["version"] = judge.verifier.meta.get("trained_at")
        described["pair_model"] = self.pair_model_note
        return described

    def _fall_back(self, note: str) -> None:
        """Decide without the pair model, saying why at WARNING once per reason (the watcher
        looks again every few seconds)."""
        self.judge = self.fallback
        if note != self.pair_model_note:
            log.warning("decision stage: %s, not the pair model: %s", self.name, note)
        self.pair_model_note = note

    async def probability(self, judge: Judge, candidate: JudgedPair) -> float | None:
        """``judge``'s probability for ``candidate``, computed in the judging thread (None:
        settled on its distance, see ``Judge.probability``)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, judge.probability, candidate)

    def load_now(self) -> None:
        """Load the pair model if one is built (blocking: at start-up, or in a thread)."""
        if self.pair_model_dir is None:
            return
        built_at = PairModel.built_at(self.pair_model_dir)
        if built_at is None:
            self._fall_back(f"no pair model at {self.pair_model_dir}")
            return
        if built_at == self.loaded_built_at:
            return
        self.loaded_built_at = built_at
        try:
            model = PairModel.load(self.pair_model_dir, self.threads)
        except Exception as error:  # a broken build: keep what is in force, say why
            log.warning("pair model at %s not loaded: %s", self.pair_model_dir, error)
            self.pair_model_note = f"built, not loaded: {error}"
            return
        if self.only_if_better and model.meta.get("quick"):
            self._fall_back(
                "built, not in force: a quick build for the tests (`make pair-model` builds "
                "the full one); DYNACACHE_PAIR_MODEL=on puts it in force"
            )
            return
        if self.only_if_better and not model.meta.get("beats_static"):
            tune, static = model.meta.get("tune", {}), model.meta.get("static_at_same_recall", {})
            # a newer build that does not qualify replaces an older one
            self._fall_back(
                f"built, not in force: on the tune pairs it does not beat the static threshold "
                f"at the same recall (precision {tune.get('precision')} vs "
                f"{static.get('precision')}); DYNACACHE_PAIR_MODEL=on puts it in force"
            )
            return
        self.judge = PairModelJudge(model)
        self.pair_model_note = "in force"
        log.info(
            "decision stage: pair model %s (radius %.3f, cut %.2f, serve_below %.2f) from %s",
            model.meta.get("version", "unversioned"),
            model.radius,
            model.cut,
            model.serve_below,
            self.pair_model_dir,
        )

    def start(self) -> None:
        if self.pair_model_dir is not None:
            self._watcher = asyncio.create_task(self._watch(), name="decision-stage")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        self._executor.shutdown(wait=False)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_s)
            try:
                await asyncio.to_thread(self.load_now)
            except Exception:  # never let the watcher die
                log.exception("pair model reload failed")
