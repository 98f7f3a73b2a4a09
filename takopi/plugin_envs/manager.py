"""``install`` / ``upgrade`` / ``remove`` of managed plugin environments, all or nothing.

Every command first does everything that can fail without touching anything the running
system uses: fetch the distributions, choose interpreters, build complete new venvs (this
takopi + the plugin's dependencies, then the plugin itself), verify them. Only then is the
config written (one atomic replace) and the ``current`` links switched; old environments are
deleted last. Any error before that point deletes what was built and leaves config and
existing environments exactly as they were.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

import takopi
from takopi.ids import RESERVED_COMMAND_IDS, RESERVED_ENGINE_IDS, is_valid_id
from takopi.plugin_envs import config_edit
from takopi.plugin_envs.errors import PluginEnvError
from takopi.plugin_envs.fetch import FetchedDist, PluginRequest, fetch, parse_request
from takopi.plugin_envs.installers import Installer, choose_installer
from takopi.plugin_envs.interpreters import (
    Interpreter,
    discover,
    newest_satisfying,
    probe,
    resolve_request,
)
from takopi.plugin_envs.self_install import TakopiSource, this_takopi
from takopi.plugin_envs.store import EnvStore, Manifest, now_text
from takopi.plugin_envs.verify import verify
from takopi.plugins import COMMAND_GROUP, CORE_DISTRIBUTION, ENGINE_GROUP

Report = Callable[[str], None]

_RESERVED = {ENGINE_GROUP: RESERVED_ENGINE_IDS, COMMAND_GROUP: RESERVED_COMMAND_IDS}


@dataclass(frozen=True, slots=True)
class EnvOptions:
    """Choices shared by ``install`` and ``upgrade``."""

    python: str | None = None
    ignore_requires_python: bool | None = None
    """None: ``install`` respects Requires-Python, ``upgrade`` keeps what the env used."""
    installer: str = "auto"
    load_check: bool = True


@dataclass(slots=True)
class _Plan:
    fetched: FetchedDist
    interpreter: Interpreter
    ignored: bool
    previous: Manifest | None
    deps: list[str]


class PluginEnvManager:
    """Managed plugin environments of one config file."""

    def __init__(self, config_path: Path, report: Report) -> None:
        self.config_path = config_path.expanduser().absolute()
        self.store = EnvStore(self.config_path)
        self.report = report
        self._available: list[Interpreter] | None = None

    # --- public commands ---------------------------------------------------------------

    def install(self, texts: Sequence[str], options: EnvOptions) -> list[Manifest]:
        """Install (or replace) one environment per requested distribution."""
        requests = [parse_request(t) for t in texts]
        _reject_duplicates([r.name for r in requests if r.name])
        config_edit.load(self.config_path)  # a broken config stops us before any work
        installer = choose_installer(options.installer)
        with self.store.locked(), tempfile.TemporaryDirectory(prefix="takopi-plugins-") as tmp:
            work = Path(tmp)
            fetched = [self._fetch(r, work / f"fetch-{i}") for i, r in enumerate(requests)]
            _reject_duplicates([f.key for f in fetched])
            previous = {f.key: self.store.current(f.key) for f in fetched}
            return self._build_and_switch(fetched, previous, options, installer, work)

    def upgrade(self, names: Sequence[str], options: EnvOptions) -> list[Manifest]:
        """Rebuild environments with the newest version (or the one named) and this takopi."""
        config_edit.load(self.config_path)
        installer = choose_installer(options.installer)
        with self.store.locked(), tempfile.TemporaryDirectory(prefix="takopi-plugins-") as tmp:
            work = Path(tmp)
            targets = self._targets(names)
            fetched: list[FetchedDist] = []
            previous: dict[str, Manifest | None] = {}
            for i, (manifest, asked) in enumerate(targets):
                request = asked if asked is not None and asked.pinned else _latest(manifest)
                got = self._fetch(request, work / f"fetch-{i}")
                if got.key != manifest.key:
                    raise PluginEnvError(
                        f"{request.text} is {got.name}, not {manifest.distribution}"
                    )
                fetched.append(got)
                previous[got.key] = manifest
            return self._build_and_switch(fetched, previous, options, installer, work)

    def remove(self, names: Sequence[str]) -> list[Manifest]:
        """Delete environments and the config entries they wrote."""
        if not names:
            raise PluginEnvError("name at least one distribution to remove")
        config_edit.load(self.config_path)  # a broken config stops us before the lock
        with self.store.locked():
            raw = config_edit.load(self.config_path)
            manifests = [m for m, _ in self._targets(names)]
            change = config_edit.ConfigChange()
            for manifest in manifests:
                change.unset_python.update(manifest.config_python)
                if manifest.enabled_added:
                    change.disable.add(manifest.distribution)
            new, notes = config_edit.apply(raw, change, self.config_path)
            if new != raw:
                config_edit.save(self.config_path, new)
            for note in notes:
                self.report(f"note: {note}")
            for manifest in manifests:
                self.store.remove(manifest.key)
                self.report(f"removed {manifest.distribution} {manifest.version}")
            return manifests

    # --- steps -------------------------------------------------------------------------

    def _targets(self, names: Sequence[str]) -> list[tuple[Manifest, PluginRequest | None]]:
        installed = {m.key: m for m in self.store.installed()}
        if not names:
            if not installed:
                raise PluginEnvError(f"no managed plugin environments in {self.store.root}")
            return [(m, None) for m in installed.values()]
        targets: list[tuple[Manifest, PluginRequest | None]] = []
        for name in names:
            request = parse_request(name)
            key = request.name
            if key is None or key not in installed:
                known = ", ".join(sorted(installed)) or "none"
                raise PluginEnvError(
                    f"{name} is not a managed plugin environment (managed: {known}); "
                    "nothing was changed"
                )
            targets.append((installed[key], request))
        _reject_duplicates([m.key for m, _ in targets])
        return targets

    def _fetch(self, request: PluginRequest, dest: Path) -> FetchedDist:
        self.report(f"fetching {request.text} ...")
        fetched = fetch(request, dest)
        if not fetched.entry_points:
            raise PluginEnvError(
                f"{fetched.describe()} declares no takopi plugin entry points "
                "(takopi.engine_backends / transport_backends / command_backends); "
                "it is not a takopi plugin"
            )
        return fetched

    def _interpreters(self) -> list[Interpreter]:
        if self._available is None:
            self._available = discover()
        return self._available

    def _choose(
        self, fetched: FetchedDist, options: EnvOptions, previous: Manifest | None
    ) -> tuple[Interpreter, bool]:
        """(interpreter, Requires-Python ignored) for ``fetched``."""
        rp = fetched.requires_python
        ignore = options.ignore_requires_python
        if ignore is None:
            ignore = previous.ignore_requires_python if previous is not None else False
        what = fetched.describe()
        if options.python:
            interp = resolve_request(options.python, self._interpreters())
            if interp.satisfies(rp):
                return interp, False
            if ignore:
                self.report(
                    f"{what} declares Requires-Python {rp}; installing it on "
                    f"{interp.describe()} anyway (--ignore-requires-python)"
                )
                return interp, True
            raise PluginEnvError(
                f"{what} requires Python {rp}, but --python {options.python} is Python "
                f"{interp.version}. Add --ignore-requires-python to install it there anyway."
            )
        if previous is not None:
            kept = probe(previous.python)
            if kept is not None and (kept.satisfies(rp) or ignore):
                return kept, not kept.satisfies(rp)
        available = self._interpreters()
        running = next((i for i in available if i.running), None)
        if running is not None and running.satisfies(rp):
            return running, False
        best = newest_satisfying(available, rp)
        here = f"Python {running.version}" if running else "this interpreter"
        if best is not None:
            self.report(
                f"{what} requires Python {rp}, which excludes {here} (takopi's own); "
                f"using {best.describe()}"
            )
            return best, False
        if not available:
            raise PluginEnvError("no usable Python interpreter (3.11 or newer) found")
        newest = max(available, key=lambda i: (i.version, i.running))
        if ignore:
            self.report(
                f"{what} requires Python {rp} and no installed interpreter satisfies it; "
                f"installing it on the newest one, {newest.describe()} "
                "(--ignore-requires-python)"
            )
            return newest, True
        found = "; ".join(f"{i.version} ({i.path})" for i in available)
        raise PluginEnvError(
            f"{what} requires Python {rp}, and no installed interpreter satisfies it "
            f"(found: {found}).\n"
            f"  Install a matching Python (e.g. with pyenv), or, since many plugins declare a "
            f"newer Python than they need, choose one explicitly:\n"
            f"  --python {newest.minor} --ignore-requires-python"
        )

    def _dependencies(self, fetched: FetchedDist, interp: Interpreter) -> list[str]:
        """The plugin's own requirements for ``interp`` (markers evaluated), minus takopi,
        after checking that this takopi satisfies what the plugin asks of takopi."""
        extras = ("", *sorted(fetched.request.extras))
        deps: list[str] = []
        for line in fetched.requires_dist:
            try:
                req = Requirement(line)
            except InvalidRequirement as exc:
                raise PluginEnvError(f"{fetched.describe()}: bad Requires-Dist {line!r}") from exc
            if req.marker is not None and not any(
                req.marker.evaluate({**interp.markers, "extra": e}) for e in extras
            ):
                continue
            req.marker = None
            if canonicalize_name(req.name) == CORE_DISTRIBUTION:
                if req.url or not req.specifier.contains(takopi.__version__, prereleases=True):
                    raise PluginEnvError(
                        f"{fetched.describe()} requires {line.split(';')[0].strip()}, "
                        f"but this takopi is {takopi.__version__}"
                    )
                continue
            deps.append(str(req))
        return deps

    def _check_ids(self, plans: Sequence[_Plan]) -> None:
        keys = {p.fetched.key for p in plans}
        claimed = {
            ep.name: m.distribution
            for m in self.store.installed()
            if m.key not in keys
            for ep in m.entry_points
        }
        seen: dict[str, str] = {}
        for plan in plans:
            for ep in plan.fetched.entry_points:
                who = plan.fetched.describe()
                if not is_valid_id(ep.name):
                    raise PluginEnvError(f"{who}: invalid plugin id {ep.name!r}")
                if ep.name in _RESERVED.get(ep.group, frozenset()):
                    raise PluginEnvError(f"{who}: plugin id {ep.name!r} is reserved")
                other = seen.get(ep.name) or claimed.get(ep.name)
                if other is not None:
                    raise PluginEnvError(
                        f"{who}: plugin id {ep.name!r} is already provided by {other}"
                    )
                seen[ep.name] = plan.fetched.name
                for local in metadata.entry_points(group=ep.group, name=ep.name):
                    dist = getattr(local.dist, "name", None) or ""
                    if canonicalize_name(dist) == CORE_DISTRIBUTION:
                        raise PluginEnvError(
                            f"{who}: plugin id {ep.name!r} is one of takopi's built-in plugins"
                        )
                    if canonicalize_name(dist) != plan.fetched.key:
                        self.report(
                            f"note: {ep.name!r} is also provided by {dist} in takopi's own "
                            "environment; [plugins.{ep.name}] python selects the managed one"
                        )

    def _build_and_switch(
        self,
        fetched: Sequence[FetchedDist],
        previous: dict[str, Manifest | None],
        options: EnvOptions,
        installer: Installer,
        work: Path,
    ) -> list[Manifest]:
        plans = []
        for got in fetched:
            interp, ignored = self._choose(got, options, previous.get(got.key))
            plans.append(
                _Plan(got, interp, ignored, previous.get(got.key), self._dependencies(got, interp))
            )
        self._check_ids(plans)
        source = this_takopi(work / "takopi")
        built: list[Manifest] = []
        try:
            for plan in plans:
                built.append(self._build(plan, source, installer, options))
            notes = self._commit_config(built, previous)
        except BaseException:
            for manifest in built:
                self.store.discard_env(manifest.env_dir)
            raise
        # Committed: the config points at the new environments from here on.
        for manifest in built:
            self.store.activate(manifest)
            self.store.prune(manifest.key)
        for note in notes:
            self.report(f"note: {note}")
        for manifest in built:
            old = previous.get(manifest.key)
            change_text = f"{old.version} -> " if old is not None else ""
            ids = ", ".join(f"{_kind(e.group)} {e.name}" for e in manifest.entry_points)
            self.report(
                f"installed {manifest.distribution} {change_text}{manifest.version} "
                f"(Python {manifest.python_version}; {ids}) in {manifest.env_dir}"
            )
        return built

    def _build(
        self, plan: _Plan, source: TakopiSource, installer: Installer, options: EnvOptions
    ) -> Manifest:
        got = plan.fetched
        env_dir = self.store.new_env_dir(got.key, got.version)
        self.report(
            f"building {got.describe()} on {plan.interpreter.describe()} with {installer.name} ..."
        )
        manifest = Manifest(
            distribution=got.name,
            key=got.key,
            version=got.version,
            requirement=got.request.text,
            python=plan.interpreter.path,
            python_version=str(plan.interpreter.version),
            requires_python=got.requires_python,
            ignore_requires_python=plan.ignored,
            takopi_version=source.version,
            takopi_source=source.description,
            installer=installer.name,
            entry_points=list(got.entry_points),
            created_at=now_text(),
            env_dir=env_dir,
        )
        try:
            installer.create_venv(plan.interpreter, env_dir)
            python = manifest.venv_python
            installer.install(
                python,
                [*source.args, *plan.deps],
                what=f"installing takopi and the dependencies of {got.describe()} "
                f"({', '.join(plan.deps) or 'none besides takopi'}) with {installer.name}",
            )
            installer.install(
                python,
                [str(got.wheel)],
                no_deps=True,
                ignore_requires_python=got.requires_python if plan.ignored else None,
                what=f"installing {got.describe()} with {installer.name}",
            )
            report = verify(python, got, source, load=options.load_check)
        except BaseException:
            self.store.discard_env(env_dir)
            raise
        if {(e.group, e.name) for e in report.entry_points} != {
            (e.group, e.name) for e in got.entry_points
        }:
            self.store.discard_env(env_dir)
            raise PluginEnvError(f"{got.describe()}: installed entry points differ from its wheel")
        return manifest

    def _commit_config(
        self, built: Sequence[Manifest], previous: dict[str, Manifest | None]
    ) -> list[str]:
        """Record the config keys in each manifest and write the config (one atomic write)."""
        raw = config_edit.load(self.config_path)  # re-read: the user may have edited it
        enabled = {canonicalize_name(e) for e in config_edit.enabled_list(raw)}
        change = config_edit.ConfigChange()
        for manifest in built:
            old = previous.get(manifest.key)
            if old is not None:
                change.unset_python.update(old.config_python)
            value = str(manifest.venv_python)
            manifest.config_python = {ep.name: value for ep in manifest.entry_points}
            change.set_python.update(manifest.config_python)
            was_added = old.enabled_added if old is not None else False
            manifest.enabled_added = was_added or bool(enabled and manifest.key not in enabled)
            change.enable.add(manifest.distribution)
            self.store.write_manifest(manifest)
        new, notes = config_edit.apply(raw, change, self.config_path)
        config_edit.save(self.config_path, new)
        return notes


def _kind(group: str) -> str:
    return group.removeprefix("takopi.").removesuffix("_backends")


def _latest(manifest: Manifest) -> PluginRequest:
    """What ``upgrade`` fetches for an environment nobody named a version for."""
    try:
        request = parse_request(manifest.requirement)
    except PluginEnvError:
        request = PluginRequest(manifest.key, manifest.key)
    if request.is_path:
        return request
    extras = f"[{','.join(sorted(request.extras))}]" if request.extras else ""
    return PluginRequest(f"{manifest.key}{extras}", manifest.key, request.extras)


def _reject_duplicates(names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PluginEnvError(f"{name} is named twice")
        seen.add(name)


__all__ = ["EnvOptions", "PluginEnvManager", "Report"]
