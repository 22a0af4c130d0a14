// Small helps for the clerk's forms. Every form works without this script; it only adds:
// - Enter in a field of a [data-no-enter] form moves to the next field instead of submitting
//   (a barcode scanner types the citizen id and then Enter);
// - date fields [data-date] tidy what was typed to dd/mm/yyyy and get an optional calendar;
// - unit selects [data-unit-picker] get a filter box (accents and "Phường/Xã" not needed).
// Plain ES5 for old browsers; no inline handlers or styles (the box's CSP forbids them).
(function () {
  "use strict";

  function fold(text) {
    var plain = text.toLowerCase().replace(/đ/g, "d");
    if (plain.normalize) plain = plain.normalize("NFD").replace(/[\u0300-\u036f]/g, "");
    return plain;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // --- Enter in a field --------------------------------------------------------------------
  function fields(form) {
    var all = form.querySelectorAll("input, select, textarea, button");
    var out = [];
    for (var i = 0; i < all.length; i++) {
      var el = all[i];
      if (el.disabled || el.type === "hidden" || el.hidden || el.tabIndex < 0) continue;
      out.push(el);
    }
    return out;
  }

  function guardEnter(form) {
    form.addEventListener("keydown", function (event) {
      var el = event.target;
      if (event.key !== "Enter" && event.keyCode !== 13) return;
      if (el.tagName !== "INPUT" || el.type === "submit" || el.type === "button" || el.type === "file") return;
      event.preventDefault();
      var list = fields(form);
      var at = list.indexOf(el);
      if (at >= 0 && at + 1 < list.length) list[at + 1].focus();
    });
  }

  // --- dates --------------------------------------------------------------------------------
  var SEPARATED = /^(\d{1,2})[\/.\-\s]+(\d{1,2})[\/.\-\s]+(\d{2}|\d{4})$/;
  var RUN = /^(\d{2})(\d{2})(\d{2}|\d{4})$/;

  // What the server will read, shown back in its dd/mm/yyyy form (a two-digit year is left to
  // the server, which knows whether the date is a birth date).
  function tidy(text) {
    var m = SEPARATED.exec(text.trim()) || RUN.exec(text.trim());
    if (!m || m[3].length !== 4) return text;
    var day = parseInt(m[1], 10), month = parseInt(m[2], 10), year = parseInt(m[3], 10);
    var d = new Date(year, month - 1, day);
    if (d.getFullYear() !== year || d.getMonth() !== month - 1 || d.getDate() !== day) return text;
    return pad(day) + "/" + pad(month) + "/" + year;
  }

  function iso(text) {
    var m = /^(\d{2})\/(\d{2})\/(\d{4})$/.exec(tidy(text));
    return m ? m[3] + "-" + m[2] + "-" + m[1] : "";
  }

  function datePicker(input) {
    input.addEventListener("blur", function () { input.value = tidy(input.value); });
    var proxy = document.createElement("input");
    if (!("showPicker" in proxy)) return; // an older browser: the text field alone
    proxy.type = "date";
    proxy.tabIndex = -1;
    proxy.className = "date-proxy";
    proxy.setAttribute("aria-hidden", "true");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "date-button secondary";
    // A word, not an emoji: old PCs (and Debian's Chromium) may have no emoji font.
    button.textContent = input.getAttribute("data-picker-button") || "...";
    button.title = input.getAttribute("data-picker-label") || "";
    button.addEventListener("click", function () {
      proxy.value = iso(input.value);
      try { proxy.showPicker(); } catch (e) { input.focus(); }
    });
    proxy.addEventListener("change", function () {
      var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(proxy.value);
      if (m) input.value = m[3] + "/" + m[2] + "/" + m[1];
      input.focus();
    });
    var wrap = document.createElement("span");
    wrap.className = "date-field";
    input.parentNode.insertBefore(wrap, input);
    wrap.appendChild(input);
    wrap.appendChild(button);
    wrap.appendChild(proxy);
  }

  // --- unit pickers ---------------------------------------------------------------------------
  function unitPicker(select) {
    var box = document.createElement("input");
    box.type = "search";
    box.className = "unit-filter";
    box.autocomplete = "off";
    box.placeholder = select.getAttribute("data-filter-label") || "";
    box.setAttribute("aria-label", box.placeholder);
    var options = select.querySelectorAll("option[data-fold]");
    function filter() {
      var words = fold(box.value).split(/\s+/).filter(function (w) { return w; });
      var first = null;
      for (var i = 0; i < options.length; i++) {
        var option = options[i], text = option.getAttribute("data-fold"), match = true;
        for (var j = 0; j < words.length; j++) if (text.indexOf(words[j]) < 0) match = false;
        option.hidden = !match;
        option.disabled = !match;
        if (match && !first) first = option;
      }
      var chosen = select.options[select.selectedIndex];
      if (first && words.length && (!chosen || chosen.disabled || !chosen.hasAttribute("data-fold"))) {
        first.selected = true;
      }
    }
    box.addEventListener("input", filter);
    box.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.keyCode === 13) {
        event.preventDefault();
        select.focus();
      }
    });
    // After the select, not before: the label names its first control, which stays the select.
    select.parentNode.insertBefore(box, select.nextSibling);
  }

  function init(root) {
    var i, list;
    list = root.querySelectorAll("form[data-no-enter]");
    for (i = 0; i < list.length; i++) if (!list[i].hasAttribute("data-ready")) { guardEnter(list[i]); list[i].setAttribute("data-ready", ""); }
    list = root.querySelectorAll("input[data-date]");
    for (i = 0; i < list.length; i++) if (!list[i].hasAttribute("data-ready")) { datePicker(list[i]); list[i].setAttribute("data-ready", ""); }
    list = root.querySelectorAll("select[data-unit-picker]");
    for (i = 0; i < list.length; i++) if (!list[i].hasAttribute("data-ready")) { unitPicker(list[i]); list[i].setAttribute("data-ready", ""); }
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  // Parts htmx swaps in (the dossier's actions after an action) get the same helps.
  document.addEventListener("htmx:load", function (event) { init(event.target.parentNode || document); });
})();
