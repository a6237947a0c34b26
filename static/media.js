// Media on the upload page: each listed file's square thumbnail (fetched with the token,
// shown through a blob: URL, loaded once the row is on screen), its processing state
// ("processing…" until its media job ends, then polled again with back-off; "failed" with
// the reason on hover) and a Details view of the extracted metadata in human units.
// Every server string is set as text, never as HTML. Exposes window.tfMedia.
"use strict";
window.tfMedia = (function () {
  // Waits between polls of a pending file (ms): about 10 minutes in all, then it stops.
  const POLL = [1000, 1000, 2000, 3000, 5000, 8000, 13000, 20000].concat(
    new Array(17).fill(30000));

  // -- units -------------------------------------------------------------------------------
  function trim(n, digits) {
    return String(Number(n.toFixed(digits)));
  }
  // Seconds as people read them: "2.0 s" under a minute, "1:02" or "1:02:03" above.
  function duration(seconds) {
    if (seconds < 59.95) return seconds.toFixed(1) + " s";
    const whole = Math.round(seconds);
    const h = Math.floor(whole / 3600);
    const m = Math.floor((whole % 3600) / 60);
    const s = String(whole % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + s : m + ":" + s;
  }
  function bitrate(bits) {
    if (bits >= 1e6) return trim(bits / 1e6, 1) + " Mb/s";
    return Math.round(bits / 1000) + " kb/s";
  }
  function sampleRate(hz) {
    return hz >= 1000 ? trim(hz / 1000, 1) + " kHz" : hz + " Hz";
  }
  function dimensions(w, h) {
    return w + " \u00d7 " + h;
  }
  // 0.004 → "1/250 s"; 1.5 → "1.5 s".
  function exposure(t) {
    if (t > 0 && t < 1) return "1/" + Math.round(1 / t) + " s";
    return trim(t, 1) + " s";
  }
  function coordinate(value, positive, negative) {
    return Math.abs(value).toFixed(5) + "\u00b0 " + (value < 0 ? negative : positive);
  }
  function gps(g) {
    if (g.latitude == null || g.longitude == null) return null;
    let text = coordinate(g.latitude, "N", "S") + ", " + coordinate(g.longitude, "E", "W");
    if (g.altitude != null) text += ", " + trim(g.altitude, 1) + " m";
    return text;
  }
  function channels(n) {
    return n === 1 ? "mono" : n === 2 ? "stereo" : n + " channels";
  }
  // Orientations 5–8 turn the picture on its side: shown with width and height swapped.
  function imageSize(image) {
    const turned = image.orientation >= 5 && image.orientation <= 8;
    return dimensions(image.width, image.height) +
      (turned ? " (shown as " + dimensions(image.height, image.width) + ")" : "");
  }
  function camera(exif) {
    const make = exif.make || "";
    const model = exif.model || "";
    if (model.toLowerCase().startsWith(make.toLowerCase())) return model || null;
    return (make + " " + model).trim();
  }

  // -- facts: [label, text] pairs of a file's metadata --------------------------------------
  function add(out, label, value, format) {
    if (value == null || value === "") return;
    const text = format ? format(value) : String(value);
    if (text != null && text !== "") out.push([label, text]);
  }
  function imageFacts(out, image) {
    if (image.width != null && image.height != null) add(out, "Dimensions", imageSize(image));
    const exif = image.exif || {};
    add(out, "Camera", camera(exif));
    add(out, "Lens", exif.lens);
    add(out, "Taken", exif.datetime_original, (v) => v.replace("T", " "));
    add(out, "Exposure", exif.exposure_time, exposure);
    add(out, "Aperture", exif.f_number, (v) => "f/" + trim(v, 1));
    add(out, "ISO", exif.iso);
    add(out, "Focal length", exif.focal_length, (v) => trim(v, 1) + " mm");
    add(out, "Location", exif.gps ? gps(exif.gps) : null);
  }
  function videoFacts(out, video) {
    if (video.width != null && video.height != null) {
      add(out, "Dimensions", dimensions(video.width, video.height));
    }
    add(out, "Duration", video.duration, duration);
    add(out, "Video codec", video.codec);
    add(out, "Frame rate", video.frame_rate, (v) => trim(v, 2) + " fps");
    add(out, "Bitrate", video.bitrate, bitrate);
    add(out, "Audio codec", video.audio_codec);
  }
  function audioFacts(out, audio) {
    add(out, "Duration", audio.duration, duration);
    add(out, "Bitrate", audio.bitrate, bitrate);
    add(out, "Sample rate", audio.sample_rate, sampleRate);
    add(out, "Channels", audio.channels, channels);
    add(out, "Codec", audio.codec);
    const tags = audio.tags || {};
    [["title", "Title"], ["artist", "Artist"], ["album", "Album"], ["date", "Date"],
      ["genre", "Genre"], ["track", "Track"]].forEach((t) => add(out, t[1], tags[t[0]]));
  }
  function documentFacts(out, doc) {
    add(out, "Pages", doc.pages);
    add(out, "Title", doc.title);
    add(out, "Author", doc.author);
  }
  function facts(metadata) {
    const out = [];
    const m = metadata || {};
    if (m.image) imageFacts(out, m.image);
    if (m.video) videoFacts(out, m.video);
    if (m.audio) audioFacts(out, m.audio);
    if (m.document) documentFacts(out, m.document);
    return out;
  }

  // -- one row -------------------------------------------------------------------------------
  // api: { headers() → request headers with the token, timeout() → ms for one request }.
  function loadThumb(img, url, api) {
    const load = async function () {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), api.timeout());
      try {
        const r = await fetch(url, { headers: api.headers(), signal: abort.signal,
          credentials: "omit", cache: "default" });
        if (!r.ok) { img.dataset.state = "error"; return; }
        const blob = await r.blob();
        img.addEventListener("load", () => URL.revokeObjectURL(img.src), { once: true });
        img.src = URL.createObjectURL(blob);
        img.dataset.state = "loaded";
      } catch (e) {
        img.dataset.state = "error";
      } finally {
        clearTimeout(timer);
      }
    };
    if (!("IntersectionObserver" in window)) { load(); return; }
    const seen = new IntersectionObserver(function (entries) {
      if (!entries.some((entry) => entry.isIntersecting)) return;
      seen.disconnect();
      load();
    }, { rootMargin: "200px" });
    seen.observe(img);
  }
  function thumb(li, file, api) {
    const old = li.querySelector(".thumb");
    const url = file.file_urls && file.file_urls.square_thumbnail;
    const slot = url ? document.createElement("img") : document.createElement("span");
    slot.className = "thumb";
    if (url) {
      slot.alt = "";
      slot.dataset.src = url;  // the derivative; the src is a blob: URL of what it served
      slot.width = 48;
      slot.height = 48;
      loadThumb(slot, url, api);
    }
    if (old) old.replaceWith(slot); else li.prepend(slot);
  }
  function status(li, file) {
    const el = li.querySelector(".processing");
    li.dataset.processing = file.processing || "none";
    el.removeAttribute("title");
    el.className = "processing";
    if (file.processing === "pending") {
      el.textContent = "processing\u2026";
    } else if (file.processing === "failed") {
      const reason = (file.metadata && file.metadata.error) || "The media job failed";
      el.textContent = "failed";
      el.classList.add("failed");
      el.title = reason;
      el.setAttribute("aria-label", "Processing failed: " + reason);
    } else {
      el.textContent = "";
    }
  }
  function details(li, file) {
    const box = li.querySelector(".details");
    const list = box.querySelector("dl");
    list.replaceChildren();
    const pairs = facts(file.metadata);
    if (file.processing === "failed" && file.metadata && file.metadata.error) {
      pairs.push(["Processing failed", file.metadata.error]);
    }
    pairs.forEach(function (pair) {
      const dt = document.createElement("dt");
      dt.textContent = pair[0];
      const dd = document.createElement("dd");
      dd.textContent = pair[1];
      list.append(dt, dd);
    });
    box.hidden = pairs.length === 0;
  }
  function render(li, file, api) {
    thumb(li, file, api);
    status(li, file);
    details(li, file);
  }
  // Ask for a pending file again with back-off until its job ends, the row leaves the page,
  // or the waits run out.
  async function poll(li, file, api) {
    for (let i = 0; i < POLL.length; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, POLL[i]));
      if (!li.isConnected) return;
      let r;
      try {
        r = await fetch(file.url, { headers: api.headers(), credentials: "omit",
          cache: "no-store" });
      } catch (e) {
        continue;
      }
      if (!li.isConnected) return;
      if (r.status === 404) return;
      if (!r.ok) continue;
      const fresh = await r.json();
      if (fresh.processing !== "pending") { render(li, fresh, api); return; }
    }
  }
  // The media parts of a list row: a thumbnail slot first, a state after .stats, and a
  // Details disclosure across the row. li holds .stats already.
  function attach(li, file, api) {
    const state = document.createElement("span");
    state.className = "processing";
    li.querySelector(".stats").after(state);
    const box = document.createElement("details");
    box.className = "details";
    const summary = document.createElement("summary");
    summary.textContent = "Details";
    summary.setAttribute("aria-label", "Details of " + file.filename);
    box.append(summary, document.createElement("dl"));
    li.append(box);
    render(li, file, api);
    if (file.processing === "pending") poll(li, file, api);
  }

  return { attach: attach, facts: facts, duration: duration };
})();
