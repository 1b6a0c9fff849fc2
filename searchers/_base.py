"""What hwnas's searchers share: Tune's protocol over generations, bookkeeping, JSON state, fronts.

A searcher hands out the members of one *generation* at a time. ``suggest`` returns the next member
(configs carry ``hwnas_generation``), ``None`` while every member is handed out but some result is
still missing, and ``FINISHED`` once the last generation is complete. Results may come back in any
order; a generation is passed to the algorithm only when all of its members are back, and in
member order, so the sequence of candidates depends on the seed only.

Settings are data: a subclass declares its algorithm settings once, as ``SETTINGS`` (a tuple of
:class:`core.settings.Setting`), and gets from that declaration validation with the project's message
format, defaults, an introspectable constructor signature, and the classmethods an orchestrator uses
without knowing any searcher by name: :meth:`~GenerationalSearcher.check_settings`,
:meth:`~GenerationalSearcher.budget` and :meth:`~GenerationalSearcher.from_objectives`.

Restoring: the state records which members were handed out, to which trial ids, and which have
results. ``Tuner.restore`` resumes unfinished trials under their old ids, so after Tune's resume hook
(:meth:`~GenerationalSearcher.restore_from_dir`) the searcher waits for those ids and hands nothing
out twice. A state loaded by hand (:meth:`~GenerationalSearcher.restore`, ``set_state``) is for a new
Tuner, whose trials start afresh: members unfinished at save time are handed out *again*, to new
trial ids, before anything new. Either way, if an old trial id reports after all, its result is
accepted; whichever of the two arrives first counts and the other is ignored.

Warm start, as Ray's searchers have it: ``points_to_evaluate`` are handed out first, as the start of
generation 0 (the algorithm fills the rest); ``add_evaluated_point`` and ``add_evaluated_trials``
file results obtained elsewhere (generation ``-1``): they join the archive and the front at once,
are never handed out, and the algorithm takes them in when the current generation closes (NSGA-II
into its survival, REINFORCE as known results). Neither counts against the budget.
"""
from __future__ import annotations

import abc
import glob
import inspect
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
from ray.tune.search import Searcher
from ray.tune.search.sample import Categorical

from core.errors import HwnasError
from core.jsonio import read_json, write_json_atomic
from core.seeding import make_rng
from core.settings import REQUIRED, Setting, resolve_settings, settings_signature
from core.validation import check_int, invalid

from ._objectives import Constraint, Objective, Objectives, parse_constraints
from ._pareto import pareto_mask, spread_indices
from ._space import Chromosome, ParamSpace
from ._tune_state import restored_trials
from ._warm_start import check_points, chromosome_of, evaluated_metrics, finished_trials

__all__ = ["Evaluation", "GenerationalSearcher", "GIVEN", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
_STATE_KIND = "hwnas.searcher-state"
#: The generation of a result filed by ``add_evaluated_point``: evaluated elsewhere, never handed out.
GIVEN = -1


@dataclass(frozen=True)
class Evaluation:
    """One evaluated candidate: its generation, chromosome, and tracked metrics (``None``: failed)."""

    generation: int
    chromosome: Chromosome
    metrics: dict[str, float] | None

    def as_json(self) -> dict[str, Any]:
        return {"generation": self.generation, "chromosome": list(self.chromosome),
                "metrics": None if self.metrics is None else dict(self.metrics)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evaluation:
        metrics = data["metrics"]
        return cls(int(data["generation"]), tuple(int(v) for v in data["chromosome"]),
                   None if metrics is None else {str(k): float(v) for k, v in metrics.items()})


class GenerationalSearcher(Searcher, abc.ABC):
    """Base class of hwnas's Tune searchers over a categorical space.

    Subclasses set :attr:`name` and :attr:`SETTINGS`, implement the ``_``-hooks below and, for the
    contract suite, :meth:`example_settings`; everything Tune, users and the orchestrator call lives
    here. Not thread-safe: Tune calls searchers from its
    driver loop only.

    Args:
        param_space: Ordered ``{name: choices}`` (lists or ``tune.choice``); the chromosome is the
            vector of choice indices in this order. ``None``: taken from the Tuner's ``param_space``
            via :meth:`set_search_properties`.
        metric: Objective metric names (a string for one); ``None``: taken from the Tuner.
        mode: ``"max"``/``"min"`` per metric.
        seed: Experiment seed; the searcher's generator is derived from it.
        constraints: :class:`~searchers.Constraint` objects or ``(metric, "<=" | ">=", value)``
            triples; a candidate that breaks one is infeasible.
        points_to_evaluate: Whole configs (``{name: value}``) handed out first, as the start of
            generation 0 (at most one generation's worth); e.g. a known architecture to seed from.
        **settings: The algorithm settings the subclass declares in :attr:`SETTINGS`.

    Raises:
        ConfigError: an argument or setting breaks its rule, or a setting's name is unknown (the
            message names it, the rule, the value and a fix).
    """

    name: ClassVar[str]
    #: The algorithm settings, declared once: names, defaults, checks and hints.
    SETTINGS: ClassVar[tuple[Setting, ...]] = ()
    CKPT_FILE_TMPL = "searcher-state-{}.json"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "SETTINGS" in cls.__dict__:  # so help() and inspect.signature show every keyword
            cls.__signature__ = settings_signature(  # type: ignore[attr-defined]
                cls.SETTINGS, leading=_common_parameters())

    def __init__(self, *, param_space: Mapping[str, Sequence[Any] | Categorical] | None = None,
                 metric: str | Sequence[str] | None = None, mode: str | Sequence[str] | None = None,
                 seed: int = 0, constraints: Sequence[Constraint | tuple[str, str, float]] = (),
                 points_to_evaluate: Sequence[Mapping[str, Any]] | None = None, **settings: Any) -> None:
        super().__init__(metric=None, mode=None)  # Ray's checks are asserts; ours raise ConfigError
        # A bare searcher (nothing given, as Ray's tests build one to restore() into) may lack required
        # settings until its state is restored; any other must be complete now.
        bare = param_space is None and metric is None and mode is None and not settings
        self._config: dict[str, Any] | None = None if bare and self._needs_settings() else self.check_settings(settings)
        self._seed = check_int("seed", seed, hint="pass the experiment seed, e.g. seed=0")
        self._constraints: tuple[Constraint, ...] = parse_constraints(constraints)
        self._space: ParamSpace | None = (
            None if param_space is None else ParamSpace.from_mapping(param_space))
        self._objectives: Objectives | None = None
        if metric is not None or mode is not None:
            self._set_objectives(metric, mode)
        self._rng = make_rng(self._seed, "searchers", self.name)
        self._seen: set[Chromosome] = set()  # shared with operators: mutate in place, never rebind
        self._archive: list[Evaluation] = []
        self._point_configs = check_points(points_to_evaluate)
        self._points: list[Chromosome] | None = None  # the points as chromosomes, once the space is known
        if self._space is not None:
            self._check_points()
        self._retry_filter: Callable[[str], bool] | None = None
        self._reset_progress()

    # ------------------------------------------------------------------ settings, for orchestrators
    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], *, where: Callable[[str], str] | None = None,
                       objectives: Sequence[Objective] | None = None,
                       constraints: Sequence[Constraint] = ()) -> dict[str, Any]:
        """The algorithm settings a searcher would run with: validated, defaults filled in, in
        :attr:`SETTINGS` order. Builds no searcher.

        Args:
            settings: The given settings (e.g. a config's ``search.settings``).
            where: How a message names setting ``n``; e.g. ``lambda n: f"config field
                'search.settings.{n}'"``. Default: ``"searcher NAME setting 'n'"``.
            objectives: When given, the settings are also checked against them (and
                ``constraints``), and the objectives' weights fill a ``weights`` setting, exactly as
                :meth:`from_objectives` will do.
            constraints: The experiment's constraints (only read with ``objectives``).

        Raises:
            ConfigError: an unknown name (the message lists the valid ones), a missing required
                setting, or a value that breaks its rule.
        """
        name_of = cls._where(where)
        if objectives is not None:
            settings = cls._with_weights(settings, objectives, name_of)
        resolved = resolve_settings(cls.SETTINGS, settings, owner=f"searcher {cls.name}", where=name_of)
        cls._check_combination(resolved, name_of)
        if objectives is not None:
            goals = Objectives.build(metric=[o.metric for o in objectives],
                                     mode=[o.mode for o in objectives],
                                     constraints=parse_constraints(constraints))
            cls._check_objectives(resolved, goals, name_of)
        return resolved

    @classmethod
    def budget(cls, settings: Mapping[str, Any]) -> int:
        """How many candidates a search with these settings evaluates (fewer only if the space runs
        out). ``settings`` are checked first (see :meth:`check_settings`); resolved ones pass as is.
        """
        return cls._budget(cls.check_settings(settings))

    @classmethod
    def from_objectives(cls, *, param_space: Mapping[str, Sequence[Any] | Categorical],
                        objectives: Sequence[Objective], constraints: Sequence[Constraint], seed: int,
                        settings: Mapping[str, Any],
                        where: Callable[[str], str] | None = None) -> GenerationalSearcher:
        """A searcher for an experiment's objectives and constraints.

        The objectives give ``metric`` and ``mode``; a searcher with a ``weights`` setting gets the
        objectives' weights as its value (others ignore them).

        Args:
            param_space: As for the constructor.
            objectives: The experiment's objectives, in order.
            constraints: The experiment's constraints.
            seed: Experiment seed.
            settings: The algorithm settings (without ``weights``).
            where: How a message names a setting (see :meth:`check_settings`).

        Raises:
            ConfigError: a setting, objective or constraint breaks its rule.
        """
        resolved = cls.check_settings(settings, where=where, objectives=objectives,
                                      constraints=constraints)
        return cls(param_space=param_space, metric=[o.metric for o in objectives],
                   mode=[o.mode for o in objectives], seed=seed, constraints=constraints, **resolved)

    @classmethod
    def example_settings(cls, *, metric: Sequence[str], mode: Sequence[str]) -> dict[str, Any]:
        """Settings for a short search (a few dozen candidates) over these metrics, for tests and
        examples; the contract suite (:mod:`searchers.testing`) runs every registered searcher with
        them. Subclasses with required settings or large default budgets override it."""
        return {}

    @property
    def settings(self) -> dict[str, Any]:
        """The algorithm settings this searcher runs with (a copy), defaults included."""
        return dict(self._config or {})

    @classmethod
    def _needs_settings(cls) -> bool:
        return any(s.default is REQUIRED for s in cls.SETTINGS)

    # ------------------------------------------------------------------ hooks for subclasses
    @abc.abstractmethod
    def _total_generations(self) -> int:
        """How many generations the search runs (the last one ends it)."""

    @abc.abstractmethod
    def _first_generation(self) -> list[Chromosome]:
        """Called once, at the first ``suggest``: the members of generation 0 (may use the rng)."""

    @abc.abstractmethod
    def _next_generation(self, evaluations: list[Evaluation], indices: list[int],
                         last: bool) -> list[Chromosome]:
        """Called when a generation is complete: its members in order, after any results given since
        the last generation (``add_evaluated_point``), with their archive positions ``indices``.
        Returns the next generation's members; ``[]`` when ``last`` or exhausted."""

    @classmethod
    @abc.abstractmethod
    def _budget(cls, settings: dict[str, Any]) -> int:
        """How many candidates the search evaluates with these (resolved) settings."""

    @classmethod
    def _generation_size(cls, settings: dict[str, Any]) -> int:
        """How many members generation 0 has (the most ``points_to_evaluate`` can fill)."""
        return cls._budget(settings)

    def _algorithm_state(self) -> dict[str, Any]:
        """JSON state of the algorithm beyond the rng and the bookkeeping kept here."""
        return {}

    def _parse_algorithm_state(self, state: Any, archive: list[Evaluation]) -> Any:
        """Validate :meth:`_algorithm_state` output against the saved archive; change nothing.

        May raise ``KeyError``/``TypeError``/``ValueError``: :meth:`set_state` reports those.
        """
        return None

    def _apply_algorithm_state(self, parsed: Any) -> None:
        """Rebuild the algorithm from :meth:`_parse_algorithm_state` output (rng, archive and
        bookkeeping are already in place). Must not fail."""

    @classmethod
    def _check_combination(cls, settings: dict[str, Any], where: Callable[[str], str]) -> None:
        """Validate rules between settings (resolved ones); ``where(name)`` names a setting."""

    @classmethod
    def _check_objectives(cls, settings: dict[str, Any], objectives: Objectives,
                          where: Callable[[str], str]) -> None:
        """Validate settings that depend on the metrics (e.g. one weight per metric)."""

    # ------------------------------------------------------------------ Tune protocol
    def set_search_properties(self, metric: str | list[str] | None, mode: str | list[str] | None,
                              config: dict[str, Any], **spec: Any) -> bool:
        """Take the space from a Tuner's ``param_space`` (its ``tune.choice`` entries).

        Returns:
            ``False`` when this searcher already has a space (Tune then leaves it alone), like Ray's
            own searchers; ``True`` after adopting ``config`` (and ``metric``/``mode`` if unset).
        """
        self._check_num_samples(spec.get("num_samples"))
        if self._objectives is None and metric and mode:  # the objectives are not the space: take them anyway
            self._set_objectives(metric, mode)
        if self._space is not None:
            return False
        self._space = ParamSpace.from_tune_config(config)
        self._check_points()
        return True

    def _check_num_samples(self, num_samples: Any) -> None:
        """Tune's ``num_samples`` only caps the trials; fewer than the search's budget cut it short, with
        its last generation never evaluated. Say so at the start, where a Tune user looks."""
        if self._config is None or not isinstance(num_samples, int):
            return
        budget = self._budget(self._config)
        if 0 < num_samples < budget:
            import warnings

            warnings.warn(f"{type(self).__name__}: TuneConfig(num_samples={num_samples}) stops Tune before this "
                          f"search's {budget} candidates, with its last generation unfinished (it never reaches "
                          f"evaluated() or pareto_front()). HINT: pass num_samples=-1 (the searcher ends the run "
                          f"when it is done) or num_samples={budget}.", UserWarning, stacklevel=2)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next member's config, ``None`` while the generation is in flight, or ``FINISHED``."""
        space = self._require_configured()
        if not self._started:
            self._open_generation(0, self._seeded_first_generation())
            self._started = True
        if self._finished:
            return Searcher.FINISHED
        member = self._next_member()
        if member is None:
            return None
        self._trial_member[trial_id] = member
        return space.config(self._members[member], self._generation)

    def add_evaluated_point(self, parameters: Mapping[str, Any], value: Any, error: bool = False,
                            pruned: bool = False, intermediate_values: Sequence[float] | None = None) -> None:
        """File a result obtained outside this search (Ray's warm-start hook).

        Args:
            parameters: The whole config (keys outside the space are ignored).
            value: The tracked metrics as a dict (a number for a single metric; a list in ``metric``
                order when no constraint reads another metric).
            error, pruned: The evaluation failed or stopped early: the point is infeasible.
            intermediate_values: Ignored (candidates are judged on their final result).

        A point already evaluated keeps its first result. A member of the open generation is not
        handed out (if it is running, its trial's result is ignored); any other point joins the
        archive and the front as generation ``-1`` and reaches the algorithm when the current
        generation closes. It does not count against the budget.

        Raises:
            ConfigError: a parameter is missing or not one of its choices, or ``value`` is malformed.
            HwnasError: the searcher has no space or metrics yet.
        """
        space, objectives = self._require_configured(), self._require_objectives()
        chromosome = chromosome_of(space, parameters, "parameters")
        metrics = evaluated_metrics(objectives, value, error=error, pruned=pruned)
        if any(e.chromosome == chromosome for e in self._archive):
            return
        if self._started and not self._finished and chromosome in self._members:
            member = self._members.index(chromosome)
            if member not in self._outcomes:
                self._record(member, metrics)
            return
        self._seen.add(chromosome)
        self._untold.append(len(self._archive))
        self._archive.append(Evaluation(GIVEN, chromosome, metrics))

    def add_evaluated_trials(self, trials_or_analysis: Any, metric: str | None = None) -> None:
        """File the finished trials of another Tune run (a ``ResultGrid``, ``Result``, ``Trial``s or
        an ``ExperimentAnalysis``) with :meth:`add_evaluated_point`: each one's config and last
        result, every tracked metric read from it (``metric``, Ray's single-metric argument, is
        accepted and must be one of them). Errored or stopped trials are filed as failed.

        Raises:
            ConfigError: not Tune trials or results, ``metric`` is not tracked, or a trial's config
                is not a point of this space.
        """
        objectives = self._require_objectives()
        if metric is not None and metric not in objectives.tracked:
            raise invalid("metric", f"must be one of the searcher's metrics {list(objectives.tracked)}", metric,
                          "leave it out: every tracked metric is read from each trial's last result")
        for config, result, errored in finished_trials(trials_or_analysis):
            self.add_evaluated_point(config, result if isinstance(result, Mapping) else {}, error=errored)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Intermediate results are ignored: candidates are judged on their final result only."""

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        """Record a result; an error, no result, or a missing/NaN metric makes the member infeasible.

        Unknown trial ids, and the second of two trials for the same member (see module docs), are
        ignored. The last result of a generation advances the algorithm. An errored trial that the
        :meth:`retry_failed_trials` filter accepts is handed out again instead.
        """
        member = self._trial_member.pop(trial_id, None)
        if member is None or member in self._outcomes or self._objectives is None:
            return
        if error and self._retry_filter is not None and self._retry_filter(trial_id):
            self._resuggest.append(member)  # its candidate is evaluated by a new trial, as if this one never ran
            return
        self._record(member, self._objectives.read(result, error))

    def retry_failed_trials(self, should_retry: Callable[[str], bool] | None) -> None:
        """Hand an errored trial's candidate out again, under a new trial, whenever ``should_retry(trial_id)``
        says so, instead of filing it as failed.

        For an orchestrator that knows better than Tune why a trial failed: Tune 2.60 can end a trial
        whose reused worker had died with fewer failures than its ``max_failures`` (it handles the dead
        worker's one failure twice). The filter is not part of the searcher's state or pickle.
        """
        self._retry_filter = should_retry

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_retry_filter": None}

    # ------------------------------------------------------------------ results
    @property
    def finished(self) -> bool:
        """Whether the last generation is complete (``suggest`` now returns ``FINISHED``)."""
        return self._finished

    def evaluated(self) -> list[dict[str, Any]]:
        """Every evaluated candidate so far, in evaluation order (failed ones with ``metrics=None``)."""
        return [self._describe(e) for e in self._archive]

    def pareto_front(self) -> list[dict[str, Any]]:
        """Feasible, non-dominated candidates over all generations, best first objective first.

        Returns:
            Dicts with ``config`` (parameter values), ``chromosome`` (choice indices), ``metrics``
            and ``generation``.
        """
        front, _ = self._front()
        return front

    def select_spread(self, k: int) -> list[dict[str, Any]]:
        """``k`` candidates at roughly equal spacing along the Pareto front (MoGA's final step).

        Args:
            k: How many (``>= 1``); the whole front when it has ``k`` or fewer members.

        Returns:
            Entries as in :meth:`pareto_front`, in front order.
        """
        k = check_int("k", k, minimum=1, hint="ask for at least one candidate")
        front, F = self._front()
        if not front:
            return []
        return [front[i] for i in spread_indices(F, k)]

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        """The searcher's whole state as JSON-serialisable data (``schema_version`` 1)."""
        self._require_configured()
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": _STATE_KIND,
            "searcher": self.name,
            "settings": self._state_settings(),
            "rng": self._rng.bit_generator.state,
            "progress": self._progress_state(),
            "archive": [e.as_json() for e in self._archive],
            "algorithm": self._algorithm_state(),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`get_state` output; unfinished members are handed out again first.

        Raises:
            HwnasError: not a searcher state, another schema version or searcher, different
                settings, or malformed content.
        """
        self._check_header(state)
        if self._space is None and self._objectives is None:
            self._configure_from(state["settings"])  # Ray's convention: restore into a bare searcher
        self._require_configured()
        self._check_settings(state["settings"])
        # Parse everything first, so a malformed state leaves this searcher untouched.
        try:
            archive = [Evaluation.from_json(e) for e in state["archive"]]
            progress = _parse_progress(state["progress"], len(archive))
            algorithm = self._parse_algorithm_state(state["algorithm"], archive)
            rng = np.random.Generator(type(self._rng.bit_generator)())
            rng.bit_generator.state = dict(state["rng"])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise HwnasError(f"searcher state is malformed ({type(exc).__name__}: {exc}). "
                             "HINT: restore a file written by save()/save_to_dir().") from exc
        # The generator object is shared with the algorithm's operators: load it in place.
        self._rng.bit_generator.state = rng.bit_generator.state
        self._archive = archive
        self._apply_progress(progress)
        self._apply_algorithm_state(algorithm)

    def save(self, checkpoint_path: str) -> None:
        """Write :meth:`get_state` to ``checkpoint_path`` atomically (JSON, never pickle)."""
        write_json_atomic(checkpoint_path, self.get_state())

    def restore(self, checkpoint_path: str) -> None:
        """Load a state written by :meth:`save`.

        Raises:
            HwnasError: the file is missing, not JSON, or not a compatible searcher state.
        """
        try:
            state = read_json(checkpoint_path)
        except FileNotFoundError:
            raise HwnasError(f"searcher state {checkpoint_path!r} does not exist. "
                             "HINT: pass the path given to save().") from None
        except OSError as exc:
            raise HwnasError(f"cannot read searcher state {checkpoint_path!r}: {exc.strerror}. "
                             "HINT: pass the path of a readable file written by save().") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HwnasError(f"{checkpoint_path!r} is not a searcher state (not JSON: {exc}). "
                             "HINT: pass the path given to save().") from None
        self.set_state(state)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Tune's experiment checkpoint hook: JSON in ``searcher-state-<session>.json``."""
        self.save(os.path.join(checkpoint_dir, self.CKPT_FILE_TMPL.format(session_str)))

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        """Restore the newest ``searcher-state-*.json`` in ``checkpoint_dir`` (Tune's resume hook).

        ``Tuner.restore`` calls it, then resumes the unfinished trials under their old ids: the members
        those trials run are waited for, not handed out again (which would evaluate them twice).
        """
        paths = glob.glob(os.path.join(checkpoint_dir, self.CKPT_FILE_TMPL.format("*")))
        if not paths:
            raise HwnasError(f"no searcher state ({self.CKPT_FILE_TMPL.format('*')}) in "
                             f"{checkpoint_dir!r}. HINT: pass the experiment directory of the run.")
        self.restore(max(paths))
        self._resuggest = [m for m in self._resuggest if m not in self._trial_member.values()]
        self._reconcile_with_tune(restored_trials(checkpoint_dir))
        if self._trial_member:
            import logging

            # Tune tells no searcher which trials Tuner.restore(resume_unfinished=False) skips.
            logging.getLogger(__name__).info(
                "%s: waiting for %d unfinished trial(s) that Tuner.restore resumes (%s); restore with "
                "resume_unfinished=True (the default) or they are never finished.", type(self).__name__,
                len(self._trial_member), ", ".join(sorted(self._trial_member)))

    def _reconcile_with_tune(self, trials: dict[str, tuple[str, dict[str, Any] | None]] | None) -> None:
        """Settle the members this state waits for against the trials Tune restores (``None``: unknown).

        A killed driver can leave the searcher's state a step apart from Tune's trial list
        (:mod:`searchers._tune_state`). A trial Tune resumes is waited for; one Tune holds as finished
        has its last result recorded (Tune will not report it again), one that errored is recorded as
        failed, and one Tune does not know is handed out again. Without this, a searcher could wait
        for a trial that never comes, and the run would end with its generation open.
        """
        if trials is None or self._objectives is None:
            return
        generation = self._generation
        for trial_id, member in list(self._trial_member.items()):
            status, result = trials.get(trial_id, ("", None))
            if status in ("PENDING", "RUNNING", "PAUSED") or self._generation != generation:
                continue
            self._trial_member.pop(trial_id, None)
            if member in self._outcomes:
                continue
            if status == "TERMINATED" and result is not None:
                self._record(member, self._objectives.read(result, False))
            elif status == "ERROR":
                self._record(member, self._objectives.read(None, True))
            else:
                self._resuggest.append(member)

    # ------------------------------------------------------------------ internals
    @classmethod
    def _where(cls, where: Callable[[str], str] | None) -> Callable[[str], str]:
        """How messages name a setting: ``where``, or the constructor's "searcher NAME setting 'n'"."""
        return where or (lambda name: f"searcher {cls.name} setting '{name}'")

    @classmethod
    def _with_weights(cls, settings: Mapping[str, Any], objectives: Sequence[Objective],
                      where: Callable[[str], str]) -> Mapping[str, Any]:
        """``settings`` plus the objectives' weights, for a searcher with a ``weights`` setting.

        A ``weights`` already there must be the default ``None`` or those same weights, so settings
        resolved by :meth:`check_settings` (with or without objectives) pass again unchanged.
        """
        if not any(s.name == "weights" for s in cls.SETTINGS):
            return settings
        weights, given = [o.weight for o in objectives], settings.get("weights")
        if given is not None and (not isinstance(given, (list, tuple)) or list(given) != weights):
            raise invalid(where("weights"), f"is taken from the objectives' weights {weights}", given,
                          "remove it, and give each objective its weight")
        return {**settings, "weights": weights}

    def _set_objectives(self, metric: Any, mode: Any) -> None:
        objectives = Objectives.build(metric=metric, mode=mode, constraints=self._constraints)
        if self._config is not None:
            self._check_objectives(self._config, objectives, self._where(None))
        self._objectives = objectives
        metrics, modes = list(objectives.metrics), list(objectives.modes)
        # Ray's convention: one objective is a string (Repeater and schedulers key results by it), several a list.
        self._metric, self._mode = (metrics[0], modes[0]) if len(metrics) == 1 else (metrics, modes)

    def _require_configured(self) -> ParamSpace:
        if self._config is None:
            missing = ", ".join(s.name for s in self.SETTINGS if s.default is REQUIRED)
            raise HwnasError(f"{type(self).__name__} has no settings yet ({missing} are required). HINT: pass them "
                             f"to the constructor, or restore() a saved state into it.")
        if self._space is None:
            raise HwnasError(f"{type(self).__name__} has no param_space yet. HINT: pass param_space= (and "
                             "metric=, mode=) to the constructor, or use it in a Tuner with param_space=/metric=/mode=.")
        if self._objectives is None:
            # Tune hands TuneConfig's metric to a searcher only together with a Tuner param_space.
            raise HwnasError(f"{type(self).__name__} has no metric and mode yet. HINT: pass metric= and mode= to "
                             "its constructor (TuneConfig's reach a searcher only with a Tuner param_space=).")
        return self._space

    def _require_objectives(self) -> Objectives:
        self._require_configured()
        return self._objectives  # type: ignore[return-value]  # checked just above

    def _reset_progress(self) -> None:
        self._untold: list[int] = []  # archive positions of given results the algorithm has not seen
        self._generation = 0
        self._started = False
        self._finished = False
        self._members: list[Chromosome] = []
        self._cursor = 0  # next member never handed out
        self._resuggest: list[int] = []  # members to hand out again after a restore
        self._trial_member: dict[str, int] = {}
        self._outcomes: dict[int, dict[str, float] | None] = {}

    def _open_generation(self, generation: int, members: list[Chromosome]) -> None:
        self._generation = generation
        self._members = list(members)
        self._cursor = 0
        self._resuggest = []
        self._trial_member = {}
        self._outcomes = {}
        self._seen.update(self._members)
        # An empty generation means the space is exhausted: finish rather than wait forever.
        self._finished = not self._members

    def _next_member(self) -> int | None:
        while self._resuggest:
            member = self._resuggest.pop(0)
            if member not in self._outcomes:
                return member
        while self._cursor < len(self._members):
            self._cursor += 1
            if self._cursor - 1 not in self._outcomes:  # a given result needs no trial
                return self._cursor - 1
        return None

    def _record(self, member: int, metrics: dict[str, float] | None) -> None:
        """The outcome of a member of the open generation; the last one closes the generation."""
        self._outcomes[member] = metrics
        if len(self._outcomes) == len(self._members):
            self._close_generation()

    def _close_generation(self) -> None:
        evaluations = [Evaluation(self._generation, self._members[i], self._outcomes[i])
                       for i in range(len(self._members))]
        first_index = len(self._archive)
        self._archive.extend(evaluations)
        # Results given since the last close reach the algorithm with this generation, before it.
        indices = self._untold + list(range(first_index, len(self._archive)))
        self._untold = []
        last = self._generation + 1 >= self._total_generations()
        members = self._next_generation([self._archive[i] for i in indices], indices, last)
        self._open_generation(self._generation + 1, [] if last else members)

    def _check_points(self) -> None:
        """Turn ``points_to_evaluate`` into chromosomes over the (now known) space, and check they fit
        in generation 0."""
        space = self._space
        assert space is not None
        self._points = list(dict.fromkeys(
            chromosome_of(space, p, f"points_to_evaluate[{i}]") for i, p in enumerate(self._point_configs)))
        size = None if self._config is None else self._generation_size(self._config)
        if size is not None and len(self._points) > size:
            raise invalid("points_to_evaluate", f"must fit in the first generation ({size} candidates)",
                          f"{len(self._points)} points", "pass fewer points, or a larger first generation "
                          "(population_size, batch_size or num_samples)")

    def _seeded_first_generation(self) -> list[Chromosome]:
        """Generation 0: the points to evaluate first (those not given already), then the algorithm's
        own first members, as many as the generation holds."""
        points = [p for p in self._points or [] if p not in self._seen]
        self._seen.update(points)  # so the algorithm draws none of them
        first = self._first_generation()
        keep = max(len(first) - len(points), 0)
        # Drawn but left out: forget them, as a restore (which rebuilds the set from members) would.
        self._seen.difference_update(first[keep:])
        return points + first[:keep]

    def _describe(self, evaluation: Evaluation) -> dict[str, Any]:
        return {"config": self._require_configured().values(evaluation.chromosome),
                "chromosome": list(evaluation.chromosome),
                "metrics": None if evaluation.metrics is None else dict(evaluation.metrics),
                "generation": evaluation.generation}

    def _front(self) -> tuple[list[dict[str, Any]], np.ndarray]:
        objectives = self._objectives
        feasible = [e for e in self._archive if objectives and objectives.feasible(e.metrics)]
        if objectives is None or not feasible:
            return [], np.empty((0, 0))
        F = np.array([objectives.minimised(e.metrics) for e in feasible])  # type: ignore[arg-type]
        kept = np.flatnonzero(pareto_mask(F))
        kept = kept[np.lexsort(F[kept].T[::-1])]
        return [self._describe(feasible[i]) for i in kept], F[kept]

    def _state_settings(self) -> dict[str, Any]:
        """What must match for a saved state to be restored: the common arguments and the settings."""
        space, objectives = self._require_configured(), self._require_objectives()
        settings = {"param_space": space.describe(), "metric": list(objectives.metrics),
                    "mode": list(objectives.modes),
                    "constraints": [c.as_json() for c in objectives.constraints],
                    "seed": self._seed, **self._config}
        if self._points:  # only when given, so states without points stay as they always were
            settings["points_to_evaluate"] = [list(p) for p in self._points]
        return json.loads(json.dumps(settings))  # the form it takes after a round trip

    def _check_header(self, state: Any) -> None:
        if not isinstance(state, Mapping) or state.get("kind") != _STATE_KIND:
            raise HwnasError("not a searcher state (no 'kind': 'hwnas.searcher-state'). "
                             "HINT: pass a file written by a searcher's save().")
        if state.get("schema_version") != SCHEMA_VERSION:
            raise HwnasError(f"searcher state has schema_version {state.get('schema_version')!r}; "
                             f"this hwnas reads version {SCHEMA_VERSION}. HINT: restore it with "
                             "the hwnas version that wrote it, or start the search afresh.")
        if state.get("searcher") != self.name:
            raise HwnasError(f"searcher state was written by {state.get('searcher')!r}, not "
                             f"{self.name!r}. HINT: restore it into the same kind of searcher.")

    def _configure_from(self, saved: Any) -> None:
        """Build this bare searcher (no space, no metrics) as the saved one was: its space, metrics,
        constraints, seed and settings, all from the state (``searcher.restore(path)`` as with Ray's)."""
        try:
            settings = dict(saved)
            space = ParamSpace.from_description(settings.pop("param_space"))
            common = {k: settings.pop(k) for k in ("metric", "mode", "constraints", "seed")}
            points = [space.values(p) for p in settings.pop("points_to_evaluate", [])]
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise HwnasError(f"searcher state has no complete settings to rebuild the searcher from "
                             f"({type(exc).__name__}: {exc}). HINT: restore into a searcher constructed with "
                             f"the saved run's param_space, metric and mode.") from None
        type(self).__init__(self, param_space=dict(zip(space.names, space.choices)), metric=common["metric"],
                            mode=common["mode"], constraints=[tuple(c) for c in common["constraints"]],
                            seed=common["seed"], points_to_evaluate=points, **settings)

    def _check_settings(self, saved: Any) -> None:
        mine = self._state_settings()
        if not isinstance(saved, Mapping):
            raise HwnasError("searcher state has no settings. HINT: pass a file written by save().")
        if self._space is not None and self._space.same_as(saved.get("param_space")):
            mine["param_space"] = saved.get("param_space")  # a state written before the values were recorded
        differing = sorted(k for k in set(mine) | set(saved) if mine.get(k) != saved.get(k))
        if differing:
            details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {mine.get(k)!r}"
                                for k in differing)
            raise HwnasError(f"searcher state was saved with other settings ({details}). HINT: "
                             "construct the searcher with the settings of the saved run.")

    def _progress_state(self) -> dict[str, Any]:
        return {
            "generation": self._generation, "started": self._started, "finished": self._finished,
            "members": [list(m) for m in self._members], "next_member": self._cursor,
            "trials": dict(self._trial_member),
            "outcomes": [[i, o] for i, o in sorted(self._outcomes.items())],
            "untold": list(self._untold),
        }

    def _apply_progress(self, p: dict[str, Any]) -> None:
        self._generation, self._started, self._finished = p["generation"], p["started"], p["finished"]
        self._members, self._cursor = p["members"], p["next_member"]
        self._outcomes, self._trial_member, self._untold = p["outcomes"], p["trials"], p["untold"]
        # Handed out before the save but without a result: hand out again, before anything new.
        self._resuggest = [i for i in range(self._cursor) if i not in self._outcomes]
        self._seen.clear()
        self._seen.update(e.chromosome for e in self._archive)
        self._seen.update(self._members)


def _common_parameters() -> list[inspect.Parameter]:
    """The constructor's own keywords (``param_space`` ... ``constraints``), which lead every
    subclass's generated signature."""
    parameters = inspect.signature(GenerationalSearcher.__init__).parameters.values()
    return [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _parse_progress(p: Mapping[str, Any], archive_size: int) -> dict[str, Any]:
    members = [tuple(int(v) for v in m) for m in p["members"]]
    outcomes = {int(i): (None if o is None else {str(k): float(v) for k, v in o.items()})
                for i, o in p["outcomes"]}
    cursor = int(p["next_member"])
    if not 0 <= cursor <= len(members) or any(not 0 <= i < len(members) for i in outcomes):
        raise ValueError("member indices out of range")
    untold = [int(i) for i in p.get("untold", [])]  # absent from states written before warm start
    if any(not 0 <= i < archive_size for i in untold):
        raise ValueError("given results out of the archive's range")
    return {"generation": int(p["generation"]), "started": bool(p["started"]),
            "finished": bool(p["finished"]), "members": members, "next_member": cursor,
            "outcomes": outcomes, "trials": {str(t): int(m) for t, m in p["trials"].items()},
            "untold": untold}
