// Minimal upload form: one multipart POST with XHR progress; the full page comes later.
"use strict";
(function () {
  const form = document.getElementById("upload");
  const progress = document.getElementById("progress");
  const status = document.getElementById("status");
  const results = document.getElementById("results");

  function describe(error) {
    const meta = error.meta || {};
    if (error.code === "request_too_large" || error.code === "file_too_large") {
      return error.title + " — the limit here is " + meta.maximum_content_length_allowed + " bytes";
    }
    if (error.code === "unsupported_media_type") {
      return "Files of type " + meta.instance_mime_type + " are not accepted here";
    }
    return error.title + ": " + error.detail;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) progress.value = Math.round((100 * e.loaded) / e.total);
    });
    xhr.addEventListener("load", function () {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if (xhr.status === 201 && body) {
        status.className = "";
        status.textContent = "Uploaded.";
        (body.files || [body]).forEach(function (file) {
          const item = document.createElement("li");
          const link = document.createElement("a");
          link.href = file.download_url;
          link.textContent = file.filename + " (" + file.size + " bytes, " + file.mime_type + ")";
          item.appendChild(link);
          results.appendChild(item);
        });
      } else {
        status.className = "error";
        status.textContent = body && body.errors ? describe(body.errors[0]) : "Upload failed";
      }
    });
    xhr.addEventListener("error", function () {
      status.className = "error";
      status.textContent = "The upload was interrupted.";
    });
    progress.hidden = false;
    progress.value = 0;
    status.textContent = "Uploading…";
    xhr.send(new FormData(form));
  });
})();
