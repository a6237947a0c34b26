// The upload page: multipart POST for small files, tus (written here) for large ones,
// with progress, cancel, retry with back-off and resume after a reload. Public API only.
"use strict";
(function () {
  const TUS_THRESHOLD = 16 * 1024 * 1024;
  const CHUNK = 8 * 1024 * 1024;
  const BACKOFF = [500, 1000, 2000, 4000, 8000, 15000];
  const $ = (id) => document.getElementById(id);
  const state = { routes: [], cursor: null };

  // -- helpers ---------------------------------------------------------------------------
  function size(n) {
    if (n == null) return "no limit";
    const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1 && n % 1024 === 0) { n /= 1024; i += 1; }
    if (i === 0 && n >= 1024) { return (n / 1048576).toFixed(1) + " MiB"; }
    return n + " " + units[i];
  }
  function human(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const token = localStorage.getItem("tf-token");
    if (token) h.Authorization = "Bearer " + token;
    return h;
  }
  function describe(status, body) {
    let error = null;
    try { error = JSON.parse(body).errors[0]; } catch (e) { error = null; }
    if (!error) return status ? "The server answered " + status : "The connection was lost";
    const meta = error.meta || {};
    if (error.code === "request_too_large" || error.code === "file_too_large") {
      return "Too large — the limit here is " + size(meta.maximum_content_length_allowed);
    }
    if (error.code === "unsupported_media_type") {
      return "Only " + (meta.allowed_mime_types || []).join(", ") +
        " accepted here (this file is " + meta.instance_mime_type + ")";
    }
    if (error.code === "unauthorized") return "A valid access token is needed";
    return error.title + ": " + error.detail;
  }
  function xhr(method, url, body, extra, onProgress) {
    const request = new XMLHttpRequest();
    const done = new Promise(function (resolve) {
      request.open(method, url);
      const h = headers(extra);
      Object.keys(h).forEach(function (k) { request.setRequestHeader(k, h[k]); });
      if (onProgress) request.upload.addEventListener("progress", onProgress);
      request.addEventListener("load", function () { resolve(request); });
      request.addEventListener("error", function () { resolve(request); });
      request.addEventListener("abort", function () { resolve(request); });
      request.send(body);
    });
    return { request: request, done: done };
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // -- one transfer row ------------------------------------------------------------------
  function Transfer(file, route) {
    this.file = file;
    this.route = route;
    this.cancelled = false;
    this.current = null;
    this.started = Date.now();
    const li = document.createElement("li");
    li.innerHTML = '<span class="name"></span><button type="button">Cancel</button>' +
      '<progress max="100" value="0"></progress><span class="stats"></span>';
    li.querySelector(".name").textContent = file.name + " (" + human(file.size) + ")";
    li.querySelector("progress").setAttribute("aria-label", "Upload of " + file.name);
    this.li = li;
    this.bar = li.querySelector("progress");
    this.stats = li.querySelector(".stats");
    this.button = li.querySelector("button");
    this.button.setAttribute("aria-label", "Cancel upload of " + file.name);
    this.button.addEventListener("click", () => this.cancel());
    $("transfers").prepend(li);
  }
  Transfer.prototype.show = function (sent) {
    const pct = this.file.size ? Math.floor((100 * sent) / this.file.size) : 100;
    const seconds = (Date.now() - this.started) / 1000;
    const speed = seconds > 0 ? sent / seconds : 0;
    const left = speed > 0 ? Math.round((this.file.size - sent) / speed) : null;
    this.bar.value = pct;
    this.li.dataset.percent = String(pct);
    this.stats.textContent = pct + "% · " + human(speed) + "/s" +
      (left != null ? " · " + left + " s left" : "");
  };
  Transfer.prototype.finish = function (resource) {
    this.bar.value = 100;
    this.li.dataset.percent = "100";
    this.li.dataset.state = "done";
    this.stats.className = "stats done";
    this.stats.textContent = "100% · uploaded as " + resource.filename + " (" +
      resource.mime_type + ")";
    this.button.remove();
    loadList(true);
  };
  Transfer.prototype.fail = function (message) {
    this.bar.value = 0;  // nothing was kept: a full bar would say otherwise
    this.li.dataset.state = "error";
    this.stats.className = "error";
    this.stats.setAttribute("role", "alert");
    this.stats.textContent = message;
    this.button.remove();
  };
  Transfer.prototype.cancel = async function () {
    this.cancelled = true;
    if (this.current) this.current.abort();
    if (this.tusUrl) {
      await xhr("DELETE", this.tusUrl, null, { "Tus-Resumable": "1.0.0" }).done;
      localStorage.removeItem(this.key);
    }
    this.li.dataset.state = "cancelled";
    this.stats.textContent = "Cancelled";
    this.button.remove();
  };

  // -- small files: one multipart POST -----------------------------------------------------
  Transfer.prototype.post = async function () {
    const form = new FormData();
    form.append("file", this.file, this.file.name);
    const call = xhr("POST", this.route, form, {}, (e) => {
      if (e.lengthComputable) this.show(Math.min(this.file.size, e.loaded));
    });
    this.current = call.request;
    const r = await call.done;
    if (this.cancelled) return;
    if (r.status === 201) this.finish(JSON.parse(r.responseText));
    else this.fail(describe(r.status, r.responseText));
  };

  // -- large files: tus 1.0.0 ---------------------------------------------------------------
  Transfer.prototype.tus = async function () {
    this.key = "tf-upload:" + [this.file.name, this.file.size, this.file.lastModified,
      this.route].join("|");
    this.tusUrl = localStorage.getItem(this.key);
    let offset = this.tusUrl ? await this.head() : null;
    if (offset == null) {
      const meta = "filename " + btoa(unescape(encodeURIComponent(this.file.name))) +
        ",route " + btoa(this.route) +
        (this.file.type ? ",filetype " + btoa(this.file.type) : "");
      const r = await xhr("POST", "/api/tus/", null, { "Tus-Resumable": "1.0.0",
        "Upload-Length": String(this.file.size), "Upload-Metadata": meta }).done;
      if (r.status !== 201) return this.fail(describe(r.status, r.responseText));
      this.tusUrl = r.getResponseHeader("Location");
      localStorage.setItem(this.key, this.tusUrl);
      offset = 0;
    }
    let failures = 0;
    while (offset < this.file.size && !this.cancelled) {
      const end = Math.min(offset + CHUNK, this.file.size);
      const base = offset;
      const call = xhr("PATCH", this.tusUrl, this.file.slice(offset, end), {
        "Tus-Resumable": "1.0.0", "Upload-Offset": String(offset),
        "Content-Type": "application/offset+octet-stream" }, (e) => this.show(base + e.loaded));
      this.current = call.request;
      const r = await call.done;
      if (this.cancelled) return;
      if (r.status === 204) {
        offset = parseInt(r.getResponseHeader("Upload-Offset"), 10);
        failures = 0;
        this.show(offset);
        continue;
      }
      const retry = r.status === 0 || r.status >= 500 || r.status === 409 || r.status === 423;
      if (!retry || failures >= BACKOFF.length) return this.fail(describe(r.status, r.responseText));
      this.stats.textContent = "Connection trouble — retrying…";
      await sleep(BACKOFF[failures]);
      failures += 1;
      const now = await this.head();
      if (now == null) return this.fail("The upload expired on the server; start it again");
      offset = now;
    }
    if (this.cancelled) return;
    localStorage.removeItem(this.key);
    const id = this.tusUrl.split("/").pop();
    const r = await xhr("GET", "/api/files/" + id).done;
    if (r.status === 200) this.finish(JSON.parse(r.responseText));
    else this.fail(describe(r.status, r.responseText));
  };
  Transfer.prototype.head = async function () {
    const r = await xhr("HEAD", this.tusUrl, null, { "Tus-Resumable": "1.0.0" }).done;
    if (r.status !== 200) return null;
    return parseInt(r.getResponseHeader("Upload-Offset"), 10);
  };

  function start(files) {
    const route = $("route").value || "/api/files";
    Array.from(files).forEach(function (file) {
      const t = new Transfer(file, route);
      (file.size >= TUS_THRESHOLD ? t.tus() : t.post()).catch((e) => t.fail(String(e)));
    });
  }

  // -- routes, list ------------------------------------------------------------------------
  async function loadRoutes() {
    const r = await xhr("GET", "/api/routes").done;
    if (r.status !== 200) return;
    state.routes = JSON.parse(r.responseText).routes;
    const select = $("route");
    select.innerHTML = "";
    state.routes.forEach(function (route) {
      const option = document.createElement("option");
      option.value = route.path;
      option.textContent = route.path;
      select.appendChild(option);
    });
    showLimits();
  }
  function showLimits() {
    const route = state.routes.find((r) => r.path === $("route").value);
    if (!route) return;
    const types = route.allowed_mime_types.length ? route.allowed_mime_types.join(", ")
      : "any type";
    $("limits").textContent = "Up to " + size(route.max_file_size) + " per file" +
      (route.max_files ? ", " + route.max_files + " per upload" : "") + "; " + types + ".";
  }
  async function loadList(reset) {
    if (reset) { state.cursor = null; $("file-list").innerHTML = ""; }
    const params = new URLSearchParams({ limit: "20" });
    if ($("filter").value) params.set("filename", $("filter").value);
    if ($("type-filter").value) params.set("mime_type", $("type-filter").value);
    if (state.cursor) params.set("cursor", state.cursor);
    const r = await xhr("GET", "/api/files?" + params.toString()).done;
    if (r.status !== 200) { $("list-status").textContent = describe(r.status, r.responseText); return; }
    const page = JSON.parse(r.responseText);
    page.files.forEach(addRow);
    state.cursor = page.next ? new URL(page.next, location.href).searchParams.get("cursor") : null;
    $("more").hidden = !state.cursor;
    $("list-status").textContent = $("file-list").children.length ? "" : "No files yet.";
  }
  function addRow(file) {
    const li = document.createElement("li");
    li.dataset.id = file.id;
    li.dataset.sha256 = file.sha256;
    const thumb = file.file_urls && file.file_urls.thumbnail;
    li.innerHTML = '<div><span class="name"></span><div class="stats"></div></div>' +
      '<div class="actions"><a class="button">Download</a>' +
      '<button type="button">Delete</button></div>';
    if (thumb) {
      const img = document.createElement("img");
      img.src = thumb;
      img.alt = "";
      li.prepend(img);
    }
    li.querySelector(".name").textContent = file.filename;
    li.querySelector(".stats").textContent = file.mime_type + " · " + human(file.size) +
      " · " + file.added.replace("T", " ").replace("Z", " UTC") +
      " · sha256 " + file.sha256.slice(0, 12);
    const link = li.querySelector("a");
    link.href = file.download_url;
    link.setAttribute("aria-label", "Download " + file.filename);
    const del = li.querySelector("button");
    del.setAttribute("aria-label", "Delete " + file.filename);
    del.addEventListener("click", async function () {
      const r = await xhr("DELETE", file.url).done;
      if (r.status === 204) { li.remove(); $("list-status").textContent = "Deleted " + file.filename; }
      else $("list-status").textContent = describe(r.status, r.responseText);
    });
    $("file-list").appendChild(li);
  }

  // -- wiring ------------------------------------------------------------------------------
  const zone = $("dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    start(e.dataTransfer.files);
  });
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("files").click(); }
  });
  $("files").addEventListener("change", (e) => { start(e.target.files); e.target.value = ""; });
  $("upload").addEventListener("submit", (e) => e.preventDefault());
  $("route").addEventListener("change", showLimits);
  $("token").value = localStorage.getItem("tf-token") || "";
  $("token").addEventListener("change", (e) => {
    localStorage.setItem("tf-token", e.target.value);
    loadList(true);
  });
  $("filter").addEventListener("input", () => loadList(true));
  $("type-filter").addEventListener("change", () => loadList(true));
  $("more").addEventListener("click", () => loadList(false));
  loadRoutes();
  loadList(true);
})();
