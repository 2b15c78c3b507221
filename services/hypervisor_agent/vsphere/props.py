"""PropertyCollector reads: many properties of many objects in few round trips.

Touching ``vm.config`` on a pyvmomi object costs one SOAP call per attribute; these helpers
ask for exactly the property paths needed, in pages, and never walk objects one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pyVmomi import vim, vmodl

PC = vmodl.query.PropertyCollector

# Objects per RetrievePropertiesEx page; the rest comes with ContinueRetrievePropertiesEx.
PAGE_SIZE = 500


def retrieve(collector: vmodl.query.PropertyCollector, specs: list[Any]) -> Iterator[Any]:
    """Every ObjectContent matched by the filter specs, following continuation tokens."""
    result = collector.RetrievePropertiesEx(specs, PC.RetrieveOptions(maxObjects=PAGE_SIZE))
    while result is not None:
        yield from result.objects
        if not result.token:
            return
        result = collector.ContinueRetrievePropertiesEx(result.token)


def as_dict(object_content: Any) -> dict[str, Any]:
    """Property path -> value; a property that is unset is absent (vCenter does not send it).

    A property refused for lack of a session or permission is reported in ``missingSet``
    instead of failing the call; raise that fault, so an expired session is noticed (and
    renewed by ``VsphereSession.call``) instead of read as "unset".
    """
    for missing in object_content.missingSet or []:
        if isinstance(missing.fault, vim.fault.NoPermission):  # NotAuthenticated is one
            raise missing.fault
    return {prop.name: prop.val for prop in object_content.propSet}


def fetch(content: vim.ServiceInstanceContent, obj: vmodl.ManagedObject, paths: Iterable[str]) -> dict | None:
    """Some properties of one object, or None when the object does not exist (any more)."""
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=obj)],
        propSet=[PC.PropertySpec(type=type(obj), pathSet=list(paths))],
    )
    try:
        found = list(retrieve(content.propertyCollector, [spec]))
    except vmodl.fault.ManagedObjectNotFound:
        return None
    return as_dict(found[0]) if found else None


def fetch_many(
    content: vim.ServiceInstanceContent, objs: list[vmodl.ManagedObject], paths: Iterable[str]
) -> dict[str, dict]:
    """The same properties of several objects, keyed by moref id; missing objects are left out."""
    if not objs:
        return {}
    paths = list(paths)
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=obj) for obj in objs],
        propSet=[PC.PropertySpec(type=t, pathSet=paths) for t in {type(obj) for obj in objs}],
    )
    try:
        return {oc.obj._moId: as_dict(oc) for oc in retrieve(content.propertyCollector, [spec])}
    except vmodl.fault.ManagedObjectNotFound:
        # one vanished object fails the whole call: ask again one by one
        found = ((obj._moId, fetch(content, obj, paths)) for obj in objs)
        return {moid: props for moid, props in found if props is not None}


def contents(
    content: vim.ServiceInstanceContent, root: vim.ManagedEntity, paths_by_type: dict[type, list[str]]
) -> list[tuple[vmodl.ManagedObject, dict]]:
    """Properties of every object of the given types below ``root``, through one ContainerView."""
    view = content.viewManager.CreateContainerView(root, list(paths_by_type), True)
    try:
        traverse_view = PC.TraversalSpec(name="view", type=vim.view.ContainerView, path="view", skip=False)
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[traverse_view])],
            propSet=[PC.PropertySpec(type=t, pathSet=paths) for t, paths in paths_by_type.items()],
        )
        return [(oc.obj, as_dict(oc)) for oc in retrieve(content.propertyCollector, [spec])]
    finally:
        view.DestroyView()
