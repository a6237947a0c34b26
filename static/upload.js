// The upload page: multipart POST for small files, tus (written here) for large ones,
// with progress, cancel, retry with back-off and resume after a reload; the list with
// download (through a signed link when the server makes them) and delete; thumbnails,
// processing state and media details come from media.js. Every request carries the access
// token, if one is entered. Public API only.
"use strict";
(function () {
  const TUS_THRESHOLD = 16 * 1024 * 1024;
  const CHUNK = 8 * 1024 * 1024;
  // Waits before each new try, in milliseconds; an upload gives up after this many failures
  // in a row (about 3 minutes: long enough for a server restart and for the lease that a
  // PATCH cut short by it may hold on the upload, answered 423 until it runs out).
  const BACKOFF = [500, 1000, 2000, 4000, 8000].concat(new Array(11).fill(15000));
  const $ = (id) => document.getElementById(id);
  const state = { routes: [], cursor: null };

  // -- helpers ---------------------------------------------------------------------------
  // A limit as people read it: exact in binary units (40 KiB, 10 GiB) or in decimal ones
  // (50 kB, 1.5 MB), whichever is exact with at most one decimal and shorter; otherwise
  // rounded (1.2 MiB). Limits are configured either way ("40KiB", "50kB").
  function size(n) {
    if (n == null) return "no limit";
    if (n < 1000) return n + " bytes";
    const exact = function (base, units) {
      for (let i = units.length; i >= 1; i -= 1) {
        const unit = Math.pow(base, i);
        if (n >= unit && (n * 10) % unit === 0) return String(n / unit) + " " + units[i - 1];
      }
      return null;
    };
    const binary = exact(1024, ["KiB", "MiB", "GiB", "TiB"]);
    const decimal = exact(1000, ["kB", "MB", "GB", "TB"]);
    if (binary && (!decimal || binary.length <= decimal.length)) return binary;
    return decimal || human(n);
  }
  function human(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }
  // The access token as entered (the field starts with the one kept in localStorage).
  function token() {
    return $("token").value.trim();
  }
  // Request headers: extra ones, and the token unless the request is anonymous (one that
  // checks a link the browser will fetch on its own, without any header).
  function headers(extra, anonymous) {
    const h = Object.assign({}, extra || {});
    if (token() && !anonymous) h.Authorization = "Bearer " + token();
    return h;
  }
  // What each scope lets a token do, for the 403 that names the missing one.
  const SCOPES = { read: "reading files", write: "uploading or changing files",
    delete: "deleting files", admin: "this" };
  // 401, 403 and a refused signed link in words: what went wrong and what to do. The
  // server never says which part of a token was wrong; challenge is WWW-Authenticate
  // (error="invalid_token" when the token sent was not accepted).
  function refused(error, meta, challenge) {
    if (error.code === "unauthorized") {
      if (/error="invalid_token"/.test(challenge || "")) {
        return "The access token was not accepted (it is wrong or has expired)";
      }
      return "This server needs an access token: enter yours under \u201cAccess token\u201d";
    }
    if (error.code === "invalid_signature") {
      return meta.expired ? "The download link has expired; choose Download again"
        : "The download link is not valid; choose Download again";
    }
    if (meta.required_scope) {
      return "Your access token does not allow " + (SCOPES[meta.required_scope] || "this") +
        " (it lacks the \u201c" + meta.required_scope + "\u201d scope)";
    }
    const detail = error.detail || "this is not yours";
    return "Not allowed: " + detail.charAt(0).toLowerCase() + detail.slice(1);
  }
  function describe(status, body, challenge) {
    let error = null;
    try { error = JSON.parse(body).errors[0]; } catch (e) { error = null; }
    if (status === 507 || (error && error.code === "insufficient_storage")) {
      return "The server is out of space: try again once room has been freed";
    }
    if (!error) return status ? "The server answered " + status : "The connection was lost";
    const meta = error.meta || {};
    if (["unauthorized", "forbidden", "invalid_signature"].indexOf(error.code) >= 0) {
      return refused(error, meta, challenge);
    }
    if (error.code === "request_too_large" || error.code === "file_too_large") {
      return "Too large — the limit here is " + size(meta.maximum_content_length_allowed);
    }
    if (error.code === "unsupported_media_type") {
      return "Only " + (meta.allowed_mime_types || []).join(", ") +
        " accepted here (this file is " + meta.instance_mime_type + ")";
    }
    return error.title + ": " + error.detail;
  }
  // Milliseconds from <body data-stall-seconds data-request-timeout-seconds> (tests make
  // them short), read at each request.
  function setting(name, fallback) {
    const seconds = Number(document.body.dataset[name]);
    return (seconds > 0 ? seconds : fallback) * 1000;
  }
  // Uploads (those with onProgress) are aborted when nothing has moved for stallSeconds,
  // while the body goes out or its answer is awaited (Uppy's ProgressTimeout does the same):
  // the request then ends with status 0 and tfStalled set, and tfSent says whether the
  // whole body had gone out. Every other request is bounded by requestTimeoutSeconds
  // (tfTimedOut). An anonymous request goes without the token.
  function xhr(method, url, body, extra, onProgress, anonymous) {
    const request = new XMLHttpRequest();
    const done = new Promise(function (resolve) {
      let timer = null;
      const finish = function () { clearTimeout(timer); resolve(request); };
      request.open(method, url);
      const h = headers(extra, anonymous);
      Object.keys(h).forEach(function (k) { request.setRequestHeader(k, h[k]); });
      if (onProgress) {
        const stall = setting("stallSeconds", 30);
        const arm = function () {
          clearTimeout(timer);
          timer = setTimeout(function () { request.tfStalled = true; request.abort(); }, stall);
        };
        request.upload.addEventListener("progress", function (e) { arm(); onProgress(e); });
        request.upload.addEventListener("load", function () { request.tfSent = true; arm(); });
        arm();
      } else {
        request.timeout = setting("requestTimeoutSeconds", 60);
      }
      request.addEventListener("load", finish);
      request.addEventListener("error", finish);
      request.addEventListener("abort", finish);
      request.addEventListener("timeout", function () { request.tfTimedOut = true; finish(); });
      request.send(body);
    });
    return { request: request, done: done };
  }
  // What went wrong with a finished request, for people.
  function explain(r) {
    if (r.tfStalled) {
      return "The upload stalled (nothing moved for " + setting("stallSeconds", 30) / 1000 +
        " s)";
    }
    if (r.tfTimedOut) return "The server did not answer in time";
    return describe(r.status, r.responseText, r.getResponseHeader("WWW-Authenticate"));
  }
  // Worth another try: network errors and stalls (0), 5xx (a tus PATCH whose body stalled
  // is answered 503), 408 (the same for a POST), 409 (offset mismatch) and 423 (locked).
  // Not 507: a full disk does not pass in the minutes of back-off; it is said at once, like
  // every other 4xx (413, 415, …).
  function retryable(status) {
    return status === 0 || (status >= 500 && status !== 507) || status === 408 ||
      status === 409 || status === 423;
  }
  // The back-off before try number failures + 1, or the server's Retry-After if longer.
  function backoff(failures, r) {
    const after = r.getResponseHeader("Retry-After");
    const asked = /^[0-9]+$/.test(after || "") ? Math.min(Number(after), 60) * 1000 : 0;
    return Math.max(BACKOFF[failures], asked);
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
    if (this.li.dataset.state === "retrying") delete this.li.dataset.state;
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
  Transfer.prototype.retrying = async function (failures, r) {
    this.retries = (this.retries || 0) + 1;
    this.li.dataset.retries = String(this.retries);
    this.li.dataset.state = "retrying";
    this.stats.textContent = "Connection trouble — retrying…";
    await sleep(backoff(failures, r));
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
  // A 408 (the server dropped a body that stopped arriving) or a stall before the whole body
  // went out is sent again from the start: a POST is all-or-nothing, nothing of it was kept.
  // A stall after the whole body went out is not: the server may have stored it.
  Transfer.prototype.post = async function () {
    for (let failures = 0; ; failures += 1) {
      const form = new FormData();
      form.append("file", this.file, this.file.name);
      const call = xhr("POST", this.route, form, {}, (e) => {
        if (e.lengthComputable) this.show(Math.min(this.file.size, e.loaded));
      });
      this.current = call.request;
      const r = await call.done;
      if (this.cancelled) return;
      if (r.status === 201) return this.finish(JSON.parse(r.responseText));
      const again = r.status === 408 || (r.tfStalled && !r.tfSent);
      if (!again || failures >= BACKOFF.length) return this.fail(explain(r));
      await this.retrying(failures, r);
      if (this.cancelled) return;
    }
  };

  // -- large files: tus 1.0.0 ---------------------------------------------------------------
  Transfer.prototype.tus = async function () {
    this.key = "tf-upload:" + [this.file.name, this.file.size, this.file.lastModified,
      this.route].join("|");
    this.tusUrl = localStorage.getItem(this.key);
    let offset = this.tusUrl ? await this.head() : null;
    if (this.cancelled) return;
    if (offset == null) {
      const meta = "filename " + btoa(unescape(encodeURIComponent(this.file.name))) +
        ",route " + btoa(this.route) +
        (this.file.type ? ",filetype " + btoa(this.file.type) : "");
      const r = await xhr("POST", "/api/tus/", null, { "Tus-Resumable": "1.0.0",
        "Upload-Length": String(this.file.size), "Upload-Metadata": meta }).done;
      if (r.status !== 201) return this.fail(explain(r));
      this.tusUrl = r.getResponseHeader("Location");
      localStorage.setItem(this.key, this.tusUrl);
      offset = 0;
    }
    // offset null: not known, ask the server (HEAD) before the next PATCH. A failed PATCH or
    // HEAD that is worth another try waits (back-off) and asks again.
    let failures = 0;
    while (!this.cancelled && (offset == null || offset < this.file.size)) {
      let call;
      if (offset == null) {
        call = xhr("HEAD", this.tusUrl, null, { "Tus-Resumable": "1.0.0" });
      } else {
        const base = offset;
        call = xhr("PATCH", this.tusUrl, this.file.slice(offset, Math.min(offset + CHUNK,
          this.file.size)), { "Tus-Resumable": "1.0.0", "Upload-Offset": String(offset),
          "Content-Type": "application/offset+octet-stream" }, (e) => this.show(base + e.loaded));
      }
      this.current = call.request;
      const r = await call.done;
      if (this.cancelled) return;
      if (r.status === 200 || r.status === 204) {
        offset = parseInt(r.getResponseHeader("Upload-Offset"), 10);
        if (r.status === 204) failures = 0;
        this.show(offset);
        continue;
      }
      if (offset == null && (r.status === 404 || r.status === 410)) {
        localStorage.removeItem(this.key);
        return this.fail("The upload expired on the server; start it again");
      }
      if (!retryable(r.status) || failures >= BACKOFF.length) return this.fail(explain(r));
      offset = null;
      await this.retrying(failures, r);
      failures += 1;
    }
    if (this.cancelled) return;
    localStorage.removeItem(this.key);
    const id = this.tusUrl.split("/").pop();
    const r = await xhr("GET", "/api/files/" + id).done;
    if (r.status === 200) this.finish(JSON.parse(r.responseText));
    else this.fail(explain(r));
  };
  // The offset of a remembered upload (after a reload), asked again with back-off like any
  // HEAD; null when it is gone (or cannot be learnt): the file is then uploaded anew.
  Transfer.prototype.head = async function () {
    for (let failures = 0; ; failures += 1) {
      const call = xhr("HEAD", this.tusUrl, null, { "Tus-Resumable": "1.0.0" });
      this.current = call.request;
      const r = await call.done;
      if (r.status === 200) return parseInt(r.getResponseHeader("Upload-Offset"), 10);
      if (this.cancelled || !retryable(r.status) || failures >= BACKOFF.length) return null;
      await this.retrying(failures, r);
    }
  };

  function start(files) {
    const route = $("route").value || "/api/files";
    Array.from(files).forEach(function (file) {
      const t = new Transfer(file, route);
      (file.size >= TUS_THRESHOLD ? t.tus() : t.post()).catch((e) => t.fail(String(e)));
    });
  }

  // -- routes, list ------------------------------------------------------------------------
  // A 401 opens the token field, so the message that points there is easy to act on.
  function askForToken(r) {
    if (r.status === 401) $("token-box").open = true;
  }
  async function loadRoutes() {
    const r = await xhr("GET", "/api/routes").done;
    if (r.status !== 200) {
      $("limits").textContent = explain(r);
      askForToken(r);
      return;
    }
    state.routes = JSON.parse(r.responseText).routes;
    const select = $("route");
    const chosen = select.value;  // kept when the routes are loaded again (a new token)
    select.innerHTML = "";
    state.routes.forEach(function (route) {
      const option = document.createElement("option");
      option.value = route.path;
      option.textContent = route.path;
      select.appendChild(option);
    });
    if (state.routes.some((route) => route.path === chosen)) select.value = chosen;
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
    if (r.status !== 200) {
      $("list-status").textContent = explain(r);
      askForToken(r);
      return;
    }
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
    li.innerHTML = '<div><span class="name"></span><div class="stats"></div></div>' +
      '<div class="actions"><a class="button">Download</a>' +
      '<button type="button">Delete</button></div>';
    li.querySelector(".name").textContent = file.filename;
    li.querySelector(".stats").textContent = file.mime_type + " · " + human(file.size) +
      " · " + file.added.replace("T", " ").replace("Z", " UTC") +
      " · sha256 " + file.sha256.slice(0, 12);
    const link = li.querySelector("a");
    link.href = file.download_url;
    link.setAttribute("aria-label", "Download " + file.filename);
    link.addEventListener("click", function (e) {
      e.preventDefault();
      download(file);
    });
    const del = li.querySelector("button");
    del.setAttribute("aria-label", "Delete " + file.filename);
    del.addEventListener("click", async function () {
      if (!window.confirm("Delete " + file.filename + "? This cannot be undone.")) return;
      const r = await xhr("DELETE", file.url).done;
      if (r.status === 204) { li.remove(); $("list-status").textContent = "Deleted " + file.filename; }
      else $("list-status").textContent = explain(r);
    });
    window.tfMedia.attach(li, file, MEDIA);
    $("file-list").appendChild(li);
  }
  // What static/media.js needs to fetch thumbnails and poll pending files as this page does.
  const MEDIA = { headers: () => headers(), timeout: () => setting("requestTimeoutSeconds", 60) };

  // -- downloads ---------------------------------------------------------------------------
  // A link (<a href>) cannot carry the token, so the page asks the server for a signed link
  // (POST /api/files/{id}/links), which works without one until it expires, checks it as
  // the browser will fetch it (anonymous, its last byte only: a refusal is then said in
  // words, not shown as a JSON page) and hands it to the browser. A server that makes no
  // signed links (404: no signing_key) serves the content directly, as it always did.
  async function download(file) {
    $("list-status").textContent = "Preparing the download of " + file.filename + "\u2026";
    const made = await xhr("POST", file.url + "/links",
      JSON.stringify({ disposition: "attachment" }), { "Content-Type": "application/json" }).done;
    let url = file.download_url;
    if (made.status === 201) url = JSON.parse(made.responseText).url;
    else if (made.status !== 404) { $("list-status").textContent = explain(made); return; }
    const check = await xhr("GET", url, null, { Range: "bytes=-1" }, null, true).done;
    if (check.status !== 200 && check.status !== 206) {
      $("list-status").textContent = explain(check);
      askForToken(check);
      return;
    }
    const a = document.createElement("a");
    a.href = url;
    a.setAttribute("download", "");  // the name comes from Content-Disposition
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    a.remove();
    $("list-status").textContent = "Downloading " + file.filename;
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
  $("token").addEventListener("change", () => {
    if (token()) localStorage.setItem("tf-token", token());
    else localStorage.removeItem("tf-token");
    loadRoutes();
    loadList(true);
  });
  $("filter").addEventListener("input", () => loadList(true));
  $("type-filter").addEventListener("change", () => loadList(true));
  $("more").addEventListener("click", () => loadList(false));
  loadRoutes();
  loadList(true);
})();
