"""Views of a trace: header tables, hex dumps, the topology diagram, the hop stepper, comparisons.

    from netsim import views
    views.Stepper(trace, cluster, predict=True)     # live widget + static HTML, one object
    views.Stepper(trace, cluster, predict=["rule", "outer_dst"])   # questions drawn from the decisions
    views.diagram(cluster, trace, hop=13)           # the topology with hop 13 highlighted
    views.header_view(trace, 13)                    # layers, fields, what changed, hex dump
    views.compare(vxlan_trace, hostgw_trace, ("vxlan", "host-gw"))
    views.summary_table()                           # the six scenarios on one screen
    print(views.symptom(trace))                     # the trace's end as the sender's user sees it
    print(views.counters(trace))                    # the drop counters it moved, host by host
    views.header_layout("wireguard")                # a Flannel backend's headers, byte by byte
    views.sentence(trace[3].decisions[0])           # a decision record told as a sentence

Nothing in the core imports this package; it only reads `Trace`, `Hop` and `Cluster`.
"""

from .backends import backend_table, header_layout
from .counters import counters
from .compare import Comparison, SummaryTable, compare, path_facts, summary_table
from .diagram import Diagram, DiagramModel, diagram, diagram_model, render_svg
from .headers import HopDiff, Layer, decompose, hop_diff, hop_layers, layer_tree, previous_hop, trace_diffs
from .hexdump import byte_map, hexdump, layer_ranges
from .predict import Challenge, auto_challenges, challenge, challenges
from .sentences import explanation, heading, outcome_text, sentence
from .stepper import HeaderView, Stepper, header_view, stepper
from .symptom import symptom

__all__ = [
    "Challenge", "Comparison", "counters", "backend_table", "header_layout", "Diagram", "DiagramModel", "HeaderView", "HopDiff", "Layer", "Stepper",
    "SummaryTable", "auto_challenges", "byte_map", "challenge", "challenges", "compare", "decompose", "diagram",
    "diagram_model", "header_view", "hexdump", "hop_diff", "hop_layers", "layer_ranges", "layer_tree",
    "path_facts", "previous_hop", "render_svg", "stepper", "summary_table", "symptom", "trace_diffs",
    "sentence", "outcome_text", "explanation", "heading",
]
