"""A small undirected graph with attributes: the diagram's devices and the links between them.

The diagram needs only a container: devices with a position, links with a kind, looked up by
either end. `g.nodes[n]` and `g.edges[a, b]` are attribute dicts and `g.edges(data=True)` lists
`(a, b, attrs)`, the same spelling as networkx, so a reader who knows networkx reads it as is
(and `networkx.Graph(g.edges(data=True))` builds one where its algorithms are wanted).
Iteration follows insertion order, so the same cluster gives the same drawing every run.
"""

from __future__ import annotations

from collections.abc import Iterator


class EdgeView:
    """`g.edges[a, b]` (either order) -> the edge's attributes; `g.edges()` lists the edges."""

    def __init__(self, graph: Graph) -> None:
        self._graph = graph

    def __getitem__(self, ends: tuple[str, str]) -> dict:
        a, b = ends
        return self._graph._adj[a][b]

    def __contains__(self, ends: object) -> bool:
        if not isinstance(ends, tuple) or len(ends) != 2:
            return False
        a, b = ends
        return a in self._graph._adj and b in self._graph._adj[a]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((a, b) for a, b, _ in self._graph._edges())

    def __len__(self) -> int:
        return len(self._graph._order)

    def __call__(self, data: bool = False) -> list:
        return list(self._graph._edges()) if data else list(self)


class Graph:
    """Nodes with attributes, undirected edges with attributes; no parallel edges, no loops."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict] = {}
        self._adj: dict[str, dict[str, dict]] = {}
        self._order: list[tuple[str, str]] = []      # each edge once, as first added
        self.edges = EdgeView(self)

    def add_node(self, node: str, **attrs) -> None:
        self.nodes.setdefault(node, {}).update(attrs)
        self._adj.setdefault(node, {})

    def add_edge(self, a: str, b: str, **attrs) -> None:
        if a == b:
            raise ValueError(f"Graph.add_edge: a loop on {a!r}")
        for n in (a, b):
            self.add_node(n)
        if b in self._adj[a]:
            self._adj[a][b].update(attrs)
            return
        shared = dict(attrs)
        self._adj[a][b] = self._adj[b][a] = shared
        self._order.append((a, b))

    def neighbors(self, node: str) -> Iterator[str]:
        return iter(self._adj[node])

    def _edges(self) -> Iterator[tuple[str, str, dict]]:
        return ((a, b, self._adj[a][b]) for a, b in self._order)

    def __contains__(self, node: object) -> bool:
        return node in self.nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)
