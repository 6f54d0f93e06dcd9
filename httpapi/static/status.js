// The status page: fetches /cluster every few seconds and redraws the
// table, one row per configured node, the leader marked.
"use strict";

const every = 2000;

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function render(view) {
  const body = document.getElementById("nodes");
  const rows = [];
  for (const n of view.nodes) {
    const tr = document.createElement("tr");
    tr.className = "node" + (n.is_leader ? " leader" : "") + (n.reachable ? "" : " unreachable");
    tr.dataset.nodeId = n.node_id;
    tr.dataset.role = n.reachable ? n.role : "unreachable";
    cell(tr, n.node_id);
    cell(tr, n.grpc_addr);
    const role = cell(tr, n.reachable ? n.role : "unreachable: " + n.error);
    if (n.is_leader) {
      const b = document.createElement("span");
      b.className = "badge";
      b.textContent = "★ leader";
      role.textContent = "";
      role.appendChild(b);
    }
    if (n.reachable) {
      cell(tr, n.term);
      cell(tr, n.applied_index);
      cell(tr, n.lag);
      cell(tr, n.writes_per_second.toFixed(1));
      cell(tr, n.write_p99_ms.toFixed(1) + " ms");
      cell(tr, n.subscribers);
      cell(tr, n.leader_changes);
      cell(tr, n.snapshot_index);
      cell(tr, n.version || "-");
    } else {
      for (let i = 0; i < 9; i++) cell(tr, "-");
    }
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  const leader = view.leader_id || "none known";
  document.getElementById("summary").textContent =
    view.nodes.length + " nodes · leader " + leader + " · commit index " + view.leader_commit_index +
    " · gathered by " + view.gathered_by + " at " + new Date().toLocaleTimeString();
}

async function refresh() {
  const err = document.getElementById("error");
  try {
    const resp = await fetch("/cluster", { cache: "no-store" });
    if (!resp.ok) throw new Error((await resp.text()).trim() || resp.statusText);
    render(await resp.json());
    err.hidden = true;
  } catch (e) {
    err.textContent = "Cannot refresh: " + e.message;
    err.hidden = false;
  }
}

document.getElementById("every").textContent = every / 1000;
refresh();
setInterval(refresh, every);
