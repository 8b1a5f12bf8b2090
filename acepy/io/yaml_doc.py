"""YAML potential files (``.yace``, pacemaker ``.yaml``): a safe loader, and typed access whose errors
name the file and the key path (``bonds[0, 1].radcoefficients``). Shared by both readers."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import yaml

from acepy.errors import PotentialFileError, PotentialFileWarning

__all__ = ["INT_LIMIT", "SYMBOLS", "YamlDoc", "describe", "key_path", "load_yaml_document", "open_yaml_mapping",
           "check_problems"]

# No integer in a potential file (sizes, indices, exponents) is legitimately this large; bounding
# them keeps an absurd value from reaching numpy as a shape or an overflowing C long.
INT_LIMIT = 2**31 - 1

# Chemical symbols Z = 1..118: the ZBL core needs Z from the element name (spec 2.5).
SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm "
    "Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No "
    "Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()

# --------------------------------------------------------------------------------------------
# YAML loading
# --------------------------------------------------------------------------------------------

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TUPLE_TAG = "tag:acepy,2024:tuple"
_BOOL_TAG = "tag:yaml.org,2002:bool"


class _YaceLoader(_Base):
    """Safe loader with three changes that yace files need.

    * A sequence used as a mapping key (`[0, 1]: {...}`) becomes a tuple (PyYAML refuses it).
    * A duplicate key is an error (PyYAML silently keeps the last one).
    * No implicit booleans: YAML 1.1 reads the element symbol `No` as False; yace files have no
      booleans, so every such scalar stays a string.
    """

    yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
        for ch, resolvers in _Base.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark)
        self.flatten_mapping(node)
        mapping = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.SequenceNode):
                key = tuple(self.construct_sequence(key_node, deep=True))
            else:
                key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in mapping
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found unhashable key",
                    key_node.start_mark) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}",
                    key_node.start_mark)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def load_yaml_document(path: Path):
    """Parse a YAML file with the safe yace loader; syntax errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PotentialFileError(path, None, f"not a UTF-8 text file ({exc})") from None
    try:
        return yaml.load(text, Loader=_YaceLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise PotentialFileError(path, where, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise PotentialFileError(path, None, f"invalid YAML: {exc}") from None


# --------------------------------------------------------------------------------------------
# Typed access with key paths in the error messages
# --------------------------------------------------------------------------------------------


def key_path(where: str, key) -> str:
    """Key path of a child: `a.b`, `a[3]`, `bonds[0, 1]`."""
    if isinstance(key, tuple):
        return f"{where}[{', '.join(str(k) for k in key)}]"
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


class YamlDoc:
    """The parsed document plus its file name; every accessor raises with the key path."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, where: str | None, problem: str) -> PotentialFileError:
        return PotentialFileError(self.path, where, problem)

    def check(self, problems, where: str) -> None:
        """Raise the first error of ``problems`` (:class:`acepy.spec.Problem`, fields under the key
        ``where``); with none, warn about each warning."""
        check_problems(self.path, problems, lambda field: key_path(where, field))

    # containers --------------------------------------------------------------------------
    def mapping(self, value, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(where, f"expected a mapping, got {describe(value)}")
        return value

    def seq(self, value, where: str) -> list:
        if not isinstance(value, list):
            raise self.error(where, f"expected a list, got {describe(value)}")
        return value

    def get(self, node: dict, key: str, where: str, default=KeyError):
        if key in node:
            return node[key]
        if default is KeyError:
            raise self.error(key_path(where, key), "required key is missing")
        return default

    # scalars -----------------------------------------------------------------------------
    def float_(self, value, where: str) -> float:
        # PyYAML leaves `1e5` and `1e-05` as strings (YAML 1.1 wants a dot), yaml-cpp does not:
        # coerce with float(), then refuse NaN and infinities.
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                out = float(value)
            except OverflowError:  # an integer beyond float64
                raise self.error(where, f"number {describe(value)} is beyond the float64 range") from None
            except ValueError:
                out = None
            if out is not None and math.isfinite(out):
                return out
            if out is not None:
                raise self.error(where, f"non-finite number {value!r}")
        raise self.error(where, f"expected a number, got {describe(value)}")

    def int_(self, value, where: str, minimum: int | None = None) -> int:
        # Integers may be written as `1` or `1.0`; anything with a fraction is an error.
        if isinstance(value, int) and not isinstance(value, bool):
            out = value
        else:
            x = self.float_(value, where) if not isinstance(value, bool) else None
            if x is None or x != int(x):
                raise self.error(where, f"expected an integer, got {describe(value)}")
            out = int(x)
        if abs(out) > INT_LIMIT:
            raise self.error(where, f"integer {out} is out of range (|n| <= {INT_LIMIT})")
        if minimum is not None and out < minimum:
            raise self.error(where, f"must be >= {minimum}, got {out}")
        return out

    def str_(self, value, where: str) -> str:
        if not isinstance(value, str):
            raise self.error(where, f"expected a string, got {describe(value)}")
        return value

    # lists of scalars --------------------------------------------------------------------
    def floats(self, value, where: str, length: int | None = None) -> np.ndarray:
        items = self.seq(value, where)
        if length is not None and len(items) != length:
            raise self.error(where, f"expected {length} values, got {len(items)}")
        return np.array([self.float_(v, key_path(where, i)) for i, v in enumerate(items)], dtype=np.float64)

    def ints(self, value, where: str, length: int | None = None) -> np.ndarray:
        items = self.seq(value, where)
        if length is not None and len(items) != length:
            raise self.error(where, f"expected {length} values, got {len(items)}")
        return np.array([self.int_(v, key_path(where, i)) for i, v in enumerate(items)], dtype=np.int64)

    def species_map(self, value, where: str, nelements: int, limit: str = "nelements") -> dict[int, object]:
        """A mapping keyed by small integers (species in `embeddings`, `functions`; radial
        indices in spline tables): int keys below ``nelements``."""
        out: dict[int, object] = {}
        for key, item in self.mapping(value, where).items():
            mu = self.int_(key, f"{where} (key {key!r})", minimum=0)
            if mu >= nelements:
                raise self.error(key_path(where, mu), f"key {mu} is not below {limit} = {nelements}")
            if mu in out:
                raise self.error(key_path(where, mu), "key given twice")
            out[mu] = item
        return out

    def pair_map(self, value, where: str, nelements: int) -> dict[tuple[int, int], object]:
        """A mapping keyed by `[mu_i, mu_j]` flow sequences."""
        out: dict[tuple[int, int], object] = {}
        for key, item in self.mapping(value, where).items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise self.error(f"{where} (key {key!r})", "expected a species pair key like [0, 1]")
            pair = tuple(self.int_(k, f"{where} (key {key!r})", minimum=0) for k in key)
            if max(pair) >= nelements:
                raise self.error(key_path(where, pair), f"species index is not below nelements = {nelements}")
            if pair in out:
                raise self.error(key_path(where, pair), "pair key given twice")
            out[pair] = item
        return out


def check_problems(path, problems, where_of) -> None:
    """Raise the first error of ``problems`` as a :class:`PotentialFileError` at ``where_of(field)``;
    with none, warn (:class:`PotentialFileWarning`) about each warning. Shared by every reader."""
    for p in problems:
        if not p.warning:
            raise PotentialFileError(path, where_of(p.field), p.message)
    for p in problems:
        warnings.warn(f"{path}: {where_of(p.field)}: {p.message}", PotentialFileWarning, stacklevel=4)


def describe(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


# --------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------


def open_yaml_mapping(path) -> tuple["YamlDoc", dict]:
    """A YAML potential file's top-level mapping, with the ``YamlDoc`` that names file and key in errors:
    FileNotFoundError for a missing file, PotentialFileError when the top level is not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "potential file not found", str(path))
    doc = YamlDoc(path)
    top = load_yaml_document(path)
    if not isinstance(top, dict):
        raise doc.error(None, f"the top level must be a mapping, got {describe(top)}")
    return doc, top
