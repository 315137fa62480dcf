// taskhub · live: sign in, then watch your orders and a project's tasks change as their
// events arrive (Server-Sent Events). No framework, no build step. The token stays in this
// page's memory; each event stream opens with a single-use ticket, since EventSource cannot
// send an Authorization header.
"use strict";

const ORDER_EVENTS = [
  "order.created", "order.reserved", "order.failed", "order.confirmed", "order.paid",
  "order.cancelled",
];
const PROJECT_EVENTS = [
  "task.created", "task.updated", "task.deleted", "member.added", "member.removed",
  "member.role_changed",
];
const TASK_FIELDS = ["title", "status", "priority", "assignee_id"];

const $ = (id) => document.getElementById(id);
const session = { token: null, me: null };
const streams = { orders: null, project: null };
const orders = new Map(); // order id → {status, history, total}
const tasks = new Map(); // task id → task document

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(method, path, { body, form } = {}) {
  const headers = {};
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  let payload;
  if (form) {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    payload = new URLSearchParams(form);
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, (data && data.detail) || response.statusText);
  return data;
}

// One event stream: a fresh ticket for each connection, and resumption after the last
// event received (`last_event_id`) whenever the connection drops or the server ends it.
class LiveStream {
  constructor({ path, types, stateElement, onEvent, stillVisible }) {
    Object.assign(this, { path, types, stateElement, onEvent, stillVisible });
    this.lastEventId = null;
    this.source = null;
    this.closed = false;
    this.delay = 250;
    this.queue = Promise.resolve(); // events are handled one after the other, in order
  }

  setState(state) {
    this.stateElement.dataset.state = state;
    this.stateElement.textContent = state;
  }

  async open() {
    if (this.closed) return;
    this.setState("connecting");
    let ticket;
    try {
      ({ ticket } = await api("POST", "/api/v1/auth/stream-ticket"));
    } catch (error) {
      if (error.status === 401) return signedOut("Your session has ended: sign in again.");
      return this.retry();
    }
    if (this.closed) return;
    const url = new URL(this.path, window.location.origin);
    url.searchParams.set("ticket", ticket);
    if (this.lastEventId) url.searchParams.set("last_event_id", this.lastEventId);
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => {
      this.delay = 250;
      this.setState("live");
    };
    source.onerror = () => {
      // Closed by the server or the network: reconnect with a new ticket (a ticket works once).
      source.close();
      if (this.source !== source) return;
      this.source = null;
      this.retry();
    };
    for (const type of this.types) {
      source.addEventListener(type, (message) => {
        this.lastEventId = message.lastEventId;
        const envelope = JSON.parse(message.data);
        this.queue = this.queue.then(() => this.onEvent(type, envelope)).catch(console.error);
      });
    }
  }

  async retry() {
    if (this.closed) return;
    this.setState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, this.delay));
    this.delay = Math.min(this.delay * 2, 10000);
    if (this.stillVisible && !(await this.stillVisible())) return this.close("gone");
    this.open();
  }

  close(state = "offline") {
    this.closed = true;
    if (this.source) this.source.close();
    this.source = null;
    this.setState(state);
  }
}

// ---- orders -------------------------------------------------------------------------------

function cents(value) {
  return typeof value === "number" ? (value / 100).toFixed(2) : "…";
}

function setOrder(id, changes) {
  const order = orders.get(id) || { status: null, history: [], total: null };
  if (changes.total !== undefined && changes.total !== null) order.total = changes.total;
  if (changes.status && changes.status !== order.status) {
    order.status = changes.status;
    order.history.push(changes.status);
  }
  orders.set(id, order);
  renderOrder(id, order);
}

function renderOrder(id, order) {
  let row = document.querySelector(`#order-rows tr[data-order-id="${id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.orderId = String(id);
    for (const name of ["id", "status", "history", "total"]) {
      const cell = document.createElement("td");
      cell.className = name;
      row.append(cell);
    }
    const rows = $("order-rows");
    const after = [...rows.children].find((other) => Number(other.dataset.orderId) < id);
    rows.insertBefore(row, after || null);
  }
  row.querySelector(".id").textContent = String(id);
  row.querySelector(".status").textContent = order.status || "…";
  row.querySelector(".history").textContent = order.history.join(" → ");
  row.querySelector(".total").textContent = cents(order.total);
  row.classList.remove("changed");
  void row.offsetWidth; // restart the highlight
  row.classList.add("changed");
  $("orders-empty").hidden = orders.size > 0;
}

async function loadOrders() {
  const page = await api("GET", "/api/v2/orders?limit=50");
  for (const order of [...page.items].reverse()) {
    setOrder(order.id, { status: order.status, total: order.total_cents });
  }
  $("orders-empty").hidden = orders.size > 0;
}

async function onOrderEvent(type, envelope) {
  logEvent(type, envelope);
  const payload = envelope.payload;
  const id = payload.order_id;
  // order.created is always PENDING; an older event may not say its status or total.
  let status = payload.status || (type === "order.created" ? "PENDING" : null);
  let total = payload.total_cents;
  if (!status || (total === undefined && !orders.has(id))) {
    try {
      const order = await api("GET", `/api/v2/orders/${id}`);
      status = status || order.status;
      total = order.total_cents;
    } catch (error) {
      if (error.status !== 404) throw error;
    }
  }
  setOrder(id, { status, total });
}

// ---- a project's tasks --------------------------------------------------------------------

function renderTask(task) {
  let row = document.querySelector(`#task-rows tr[data-task-id="${task.id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.taskId = String(task.id);
    for (const name of ["id", ...TASK_FIELDS]) {
      const cell = document.createElement("td");
      cell.className = name;
      row.append(cell);
    }
    $("task-rows").append(row);
  }
  row.querySelector(".id").textContent = String(task.id);
  for (const name of TASK_FIELDS) {
    const value = task[name];
    row.querySelector(`.${name}`).textContent = value === null || value === undefined ? "—" : String(value);
  }
  row.classList.remove("changed");
  void row.offsetWidth;
  row.classList.add("changed");
}

async function onProjectEvent(type, envelope) {
  logEvent(type, envelope);
  const payload = envelope.payload;
  if (type === "task.created" && payload.task) {
    tasks.set(payload.task_id, payload.task);
    renderTask(payload.task);
  } else if (type === "task.updated") {
    let task = tasks.get(payload.task_id);
    if (!task) {
      task = await api("GET", `/api/v1/tasks/${payload.task_id}`);
    } else {
      for (const [field, change] of Object.entries(payload.changes || {})) task[field] = change[1];
    }
    tasks.set(task.id, task);
    renderTask(task);
  } else if (type === "task.deleted") {
    tasks.delete(payload.task_id);
    const row = document.querySelector(`#task-rows tr[data-task-id="${payload.task_id}"]`);
    if (row) row.remove();
  } else if (type === "member.removed" && payload.user_id === session.me.id) {
    $("project-note").textContent = "You were removed from this project.";
  }
}

async function watchProject(projectId) {
  if (streams.project) streams.project.close();
  streams.project = null;
  tasks.clear();
  $("task-rows").replaceChildren();
  $("project-note").textContent = "";
  if (!projectId) return;
  const page = await api("GET", `/api/v1/tasks?project_id=${projectId}&sort=id&limit=200`);
  for (const task of page.items) {
    tasks.set(task.id, task);
    renderTask(task);
  }
  streams.project = new LiveStream({
    path: `/api/v1/projects/${projectId}/events`,
    types: PROJECT_EVENTS,
    stateElement: $("project-state"),
    onEvent: onProjectEvent,
    stillVisible: async () => {
      try {
        await api("GET", `/api/v1/projects/${projectId}`);
        return true;
      } catch (error) {
        if (error.status !== 404) return true;
        $("project-note").textContent = "This project is no longer visible to you.";
        return false;
      }
    },
  });
  streams.project.open();
}

async function loadProjects() {
  const page = await api("GET", "/api/v1/projects?limit=200");
  const select = $("project-select");
  select.replaceChildren(new Option("Choose a project…", ""));
  for (const project of page.items) select.append(new Option(`${project.title} (#${project.id})`, project.id));
}

// ---- the page -----------------------------------------------------------------------------

function logEvent(type, envelope) {
  const item = document.createElement("li");
  const time = new Date(envelope.occurred_at).toLocaleTimeString();
  item.textContent = `${time}  ${type}  ${JSON.stringify(envelope.payload)}`;
  const log = $("event-log");
  log.prepend(item);
  while (log.children.length > 100) log.lastChild.remove();
}

async function signIn(event) {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    const token = await api("POST", "/api/v1/auth/login/access-token", {
      form: { username: $("email").value, password: $("password").value },
    });
    session.token = token.access_token;
    session.me = await api("GET", "/api/v1/users/me");
  } catch (error) {
    session.token = null;
    $("sign-in-error").textContent = error.message;
    return;
  }
  $("password").value = "";
  $("sign-in").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = session.me.email;
  await Promise.all([loadOrders(), loadProjects()]);
  streams.orders = new LiveStream({
    path: "/api/v2/orders/events",
    types: ORDER_EVENTS,
    stateElement: $("orders-state"),
    onEvent: onOrderEvent,
  });
  streams.orders.open();
}

function signedOut(message) {
  for (const stream of Object.values(streams)) if (stream) stream.close();
  streams.orders = streams.project = null;
  session.token = session.me = null;
  orders.clear();
  tasks.clear();
  $("order-rows").replaceChildren();
  $("task-rows").replaceChildren();
  $("event-log").replaceChildren();
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
}

async function signOut() {
  try {
    await api("POST", "/api/v1/auth/logout");
  } finally {
    signedOut("");
  }
}

$("sign-in").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
$("project-select").addEventListener("change", (event) => watchProject(event.target.value));
