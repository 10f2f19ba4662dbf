// deckhand web UI: re-fetch the live panel of a deployment page every few seconds, and ask
// before an action form (promote, abort, roll back) posts.
// The panel is HTML rendered by the server; the login cookie is sent by the browser
// (scripts cannot read it). A 401 means the token was revoked: back to the login page.
(function () {
  "use strict";

  // Progressive enhancement: without this script the forms post at once. Listening on the
  // document also covers the forms of the live panel, which is replaced on every refresh.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form instanceof HTMLFormElement ? form.getAttribute("data-confirm") : null;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function start() {
    var live = document.getElementById("live");
    if (!live) {
      return;
    }
    var src = live.getAttribute("data-live-src");
    var seconds = Math.max(1, Number(live.getAttribute("data-interval")) || 5);
    var status = document.getElementById("live-status");
    var refreshes = 0;
    var busy = false;

    function say(text, stale) {
      if (status) {
        status.textContent = text;
        status.classList.toggle("stale", stale);
      }
    }

    // A form of the panel that the user is filling in (a promote with its reason and note)
    // would be wiped by the next refresh: the panel holds still until it is sent or reset.
    function editing() {
      var fields = live.querySelectorAll("input:not([type=hidden]), select, textarea");
      return Array.prototype.some.call(fields, function (field) {
        if (field === document.activeElement) {
          return true;
        }
        if (field.tagName === "SELECT") {
          return Array.prototype.some.call(field.options, function (o) {
            return o.selected !== o.defaultSelected;
          });
        }
        return field.value !== field.defaultValue;
      });
    }

    async function refresh() {
      if (busy || document.hidden) {
        return;
      }
      if (editing()) {
        say("Live: paused while you fill in a form here.", false);
        return;
      }
      busy = true;
      try {
        var response = await fetch(src, {
          credentials: "same-origin",
          cache: "no-store",
          headers: { Accept: "text/html" },
        });
        if (response.status === 401) {
          var here = window.location.pathname + window.location.search;
          window.location.assign("/ui/login?reason=expired&next=" + encodeURIComponent(here));
          return;
        }
        var body = await response.text();
        if (!response.ok) {
          throw new Error(response.status + " " + body.slice(0, 200));
        }
        var open = Array.prototype.map.call(live.querySelectorAll("details[open]"), function (d) {
          return d.className;
        });
        live.innerHTML = body;
        open.forEach(function (name) {
          var details = live.querySelector("details." + name);
          if (details) {
            details.open = true;
          }
        });
        refreshes += 1;
        live.setAttribute("data-refreshes", String(refreshes));
        var now = new Date().toISOString().slice(11, 19);
        say("Live: refreshed at " + now + " UTC, every " + seconds + " s.", false);
      } catch (err) {
        say("Refresh failed (" + err.message + "); showing the last data and retrying.", true);
      } finally {
        busy = false;
      }
    }

    window.setInterval(refresh, seconds * 1000);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) {
        refresh();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
