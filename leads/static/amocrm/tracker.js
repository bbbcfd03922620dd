/* amoCRM tracker: remembers how a visitor came to the site (first and last touch, ad click ids) and adds it
 * to lead forms. On every page of the site, one async script tag with this file as its src (README.md, "Tracker").
 * (No closing script tag in here: the file must also work pasted inline.)
 * window.amocrmTracker.fields() gives the intake's fields; every <form data-amocrm> gets them as hidden inputs.
 * window.amocrmTrackerConsent = false (set at any time): nothing is stored, what was stored is removed.
 * Plain ES5 without dependencies, for old browsers on small sites. */
(function (window, document) {
  'use strict';
  if (window.amocrmTracker) return;  // the line was pasted twice

  var NAME = 'amocrm_tracker';  // the first-party cookie and the localStorage key
  var MARK = 'data-amocrm-tracker';  // on form inputs whose value is ours
  var KEEP = 90 * 864e5;  // touches and click ids are kept 90 days
  var MAX_COOKIE = 2000;  // encoded state, well under the 4 KB a browser keeps per cookie
  var UTM = ['utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content'];
  // A touch is stored as an array, to keep the cookie small:
  // [utm_source, utm_medium, utm_campaign, utm_term, utm_content, referrer, landing_page, at (ms)]
  var REFERRER = 5, LANDING = 6, AT = 7;
  var CLICK_IDS = {gclid: 'gclid', gbraid: 'gbraid', wbraid: 'wbraid', yclid: 'yclid', fbclid: 'fbclid',
    msclkid: 'msclkid', rb_clickid: 'vk_clickid'};  // URL parameter: field
  var location = window.location, https = location.protocol === 'https:';
  var now = new Date().getTime();
  var cookieDomain = null;  // the widest domain that takes our cookie ('' = this host only), kept in the state
  var storedCookie = null, storedLocal = null;  // what the stores hold: an unchanged state is not written again

  function withheld() {
    return window.amocrmTrackerConsent === false;
  }

  // Cut to n characters without splitting a surrogate pair (encodeURIComponent throws on half of one).
  function cut(text, n) {
    text = String(text || '');
    if (text.length <= n) return text;
    var code = text.charCodeAt(n - 1);
    return text.slice(0, code >= 0xD800 && code <= 0xDBFF ? n - 1 : n);
  }

  function query() {
    var out = {}, pairs = location.search.slice(1).split('&');
    for (var i = 0; i < pairs.length; i++) {
      var at = pairs[i].indexOf('='), key = at < 0 ? pairs[i] : pairs[i].slice(0, at);
      try {
        if (key && !out[key]) out[key] = at < 0 ? '' : decodeURIComponent(pairs[i].slice(at + 1).replace(/\+/g, ' '));
      } catch (e) { /* a malformed escape: skip the parameter */ }
    }
    return out;
  }

  function cookies(name) {  // every value of the cookie: one per domain it was set on
    var out = [], parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      if (parts[i].slice(0, name.length + 1) === name + '=') out.push(parts[i].slice(name.length + 1));
    }
    return out;
  }

  function setCookie(name, value, domain, expires) {
    document.cookie = name + '=' + value + '; path=/; expires=' + new Date(expires).toUTCString() +
      (domain ? '; domain=' + domain : '') + '; samesite=lax' + (https ? '; secure' : '');
  }

  function domains() {  // candidate cookie domains, widest first: example.com, www.example.com
    var host = location.hostname, parts = host.split('.'), out = [];
    if (/^[\d.]+$/.test(host) || host.indexOf(':') >= 0) return out;  // an IP address
    for (var i = parts.length - 2; i >= 0; i--) out.push(parts.slice(i).join('.'));
    return out;
  }

  // The widest domain the browser accepts (as analytics counters do): www.shop.com and shop.com share the state.
  // Found with a probe cookie that is deleted at once.
  function findCookieDomain() {
    var candidates = domains(), probe = NAME + '_probe', value = String(Math.random()).slice(2);
    for (var i = 0; i < candidates.length; i++) {
      setCookie(probe, value, candidates[i], now + 6e4);
      if (cookies(probe).join().indexOf(value) >= 0) {
        setCookie(probe, '', candidates[i], 0);
        return candidates[i];
      }
    }
    return '';
  }

  function isTouch(t) {
    if (!t || t.length !== 8 || typeof t[AT] !== 'number') return false;
    for (var i = 0; i < AT; i++) if (typeof t[i] !== 'string') return false;
    return true;
  }

  function fresh(at) {
    return at > now - KEEP && at <= now + 864e5;
  }

  // Two stored states (cookie and localStorage, or cookies of two domains) into one: the oldest touch is the
  // first, the newest campaign or referral touch the last, the newest value of every click id is kept;
  // what is older than 90 days is dropped (so when the first touch expires, the last one becomes the first).
  function merge(a, b) {
    var out = {f: null, l: null, c: {}, d: null}, states = [a, b], touches = [], i, key;
    for (i = 0; i < 2; i++) {
      var s = states[i];
      if (!s) continue;
      if (out.d === null && typeof s.d === 'string') out.d = s.d;
      if (isTouch(s.f) && fresh(s.f[AT])) touches.push([s.f, false]);
      if (isTouch(s.l) && fresh(s.l[AT])) touches.push([s.l, true]);
      for (key in s.c) {
        var v = s.c[key];
        if (s.c.hasOwnProperty(key) && v && typeof v[0] === 'string' && fresh(v[1]) &&
            (!out.c[key] || v[1] > out.c[key][1])) out.c[key] = v;
      }
    }
    for (i = 0; i < touches.length; i++) if (!out.f || touches[i][0][AT] < out.f[AT]) out.f = touches[i][0];
    for (i = 0; i < touches.length; i++) {
      var t = touches[i][0];
      if (t[AT] > out.f[AT] && (touches[i][1] || campaignTouch(t)) && (!out.l || t[AT] > out.l[AT])) out.l = t;
    }
    return out;
  }

  function campaignTouch(t) {  // not a direct visit: it has a UTM value or a referrer
    for (var i = 0; i <= REFERRER; i++) if (t[i]) return true;
    return false;
  }

  function parse(text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      return null;
    }
  }

  function storage() {
    try {
      return window.localStorage;
    } catch (e) {
      return null;  // disabled, or a sandboxed frame
    }
  }

  function load() {
    var state = null, values = cookies(NAME), store = storage();
    for (var i = 0; i < values.length; i++) {
      try {
        state = merge(state, parse(decodeURIComponent(values[i])));
      } catch (e) { /* not ours */ }
    }
    if (values.length === 1) storedCookie = values[0];
    try {
      storedLocal = store ? store.getItem(NAME) : null;
      state = merge(state, parse(storedLocal));
    } catch (e) { /* unreadable */ }
    state = merge(state, null);
    // The domain found on an earlier page saves the probe, as long as it is one of this host's.
    var list = domains();
    for (i = 0; i < list.length; i++) if (list[i] === state.d) cookieDomain = state.d;
    if (state.d === '' && !list.length) cookieDomain = '';
    return state;
  }

  function serialize(state) {
    var compact = {f: state.f, c: state.c, d: state.d};
    if (state.l) compact.l = state.l;
    return encodeURIComponent(JSON.stringify(compact));
  }

  // The state as cookie text under MAX_COOKIE: while too long, halve the longest value.
  function encode(state) {
    var text = serialize(state);
    while (text.length > MAX_COOKIE) {
      var slots = [], longest = null, size = 1;
      if (state.f) slots.push(state.f);
      if (state.l) slots.push(state.l);
      for (var key in state.c) if (state.c.hasOwnProperty(key)) slots.push(state.c[key]);
      for (var i = 0; i < slots.length; i++) {
        for (var j = 0; j < slots[i].length; j++) {
          if (typeof slots[i][j] === 'string' && slots[i][j].length > size) {
            longest = [slots[i], j];
            size = slots[i][j].length;
          }
        }
      }
      if (!longest) break;
      longest[0][longest[1]] = cut(longest[0][longest[1]], size >> 1);
      text = serialize(state);
    }
    return text;
  }

  function forget() {
    var candidates = domains().concat('');
    for (var i = 0; i < candidates.length; i++) setCookie(NAME, '', candidates[i], 0);
    try {
      storage().removeItem(NAME);
    } catch (e) { /* nothing stored */ }
    storedCookie = storedLocal = null;
  }

  // Every write goes through here, and asks for consent first. Each cookie or storage access may be a
  // synchronous round trip to the browser's storage process, so what the stores already hold is not rewritten
  // (an unchanged state holds nothing newer than the cookie's last write, which keeps it for 90 days).
  function save() {
    if (withheld()) {
      forget();
      return false;
    }
    if (cookieDomain === null) cookieDomain = findCookieDomain();
    state.d = cookieDomain;
    var text = encode(state), json = decodeURIComponent(text);
    if (text !== storedCookie) {
      setCookie(NAME, text, cookieDomain, now + KEEP);
      storedCookie = text;
    }
    if (json !== storedLocal) {
      try {
        storage().setItem(NAME, json);
        storedLocal = json;
      } catch (e) { /* full or disabled: the cookie is enough */ }
    }
    return true;
  }

  // A referrer on this host, or on the domain the cookie is shared by (www.shop.com and shop.com), is the same site.
  function internal(url) {
    var host = ((/^[a-z][a-z0-9+.-]*:\/\/([^\/?#:]+)/i.exec(url) || [])[1] || '').toLowerCase();
    var site = cookieDomain || location.hostname;
    return host === location.hostname || host === site || host.slice(-site.length - 1) === '.' + site;
  }

  // This page view: a new touch when it carries UTM parameters or a click id, or comes from another site.
  function visit(state) {
    var params = query(), campaign = false, key;
    var touch = [];
    for (var i = 0; i < UTM.length; i++) {
      touch.push(cut(params[UTM[i]], 255));
      if (touch[i]) campaign = true;
    }
    for (key in CLICK_IDS) {
      if (CLICK_IDS.hasOwnProperty(key) && params[key]) {
        state.c[CLICK_IDS[key]] = [cut(params[key], 255), now];
        campaign = true;
      }
    }
    var referrer = document.referrer && !internal(document.referrer) ? document.referrer : '';
    touch.push(cut(referrer, 500), cut(location.href, 500), now);
    if (!state.f) state.f = touch;  // the first visit, a direct one too
    else if (campaign || referrer) state.l = touch;
    return state;
  }

  function iso(ms) {
    return new Date(ms).toISOString();
  }

  function put(out, key, value) {
    if (value) out[key] = value;
  }

  function cookieValue(name) {
    var value = cookies(name)[0];
    try {
      return value ? decodeURIComponent(value) : '';
    } catch (e) {
      return value;
    }
  }

  // The intake's fields: last touch, this page, click and analytics ids, the first touch nested.
  // Empty values are left out, so the result can be merged over a form's own data. {} without consent.
  function fields() {
    if (!save()) return {};
    var first = state.f, last = state.l || first, out = {}, ft = {}, key;
    for (var i = 0; i < UTM.length; i++) {
      put(out, UTM[i], last[i]);
      put(ft, UTM[i], first[i]);
    }
    put(out, 'referrer', last[REFERRER]);
    put(out, 'page_url', cut(location.href, 2000));
    for (key in state.c) if (state.c.hasOwnProperty(key)) put(out, key, state.c[key][0]);
    put(out, 'ym_client_id', cookieValue('_ym_uid'));
    // _ga is "GA1.1.<random>.<first visit>": the client id is the last two parts.
    put(out, 'ga_client_id', (/^GA\d+\.\d+\.(\d+\.\d+)$/.exec(cookieValue('_ga')) || [])[1]);
    put(out, 'roistat_visit', cookieValue('roistat_visit'));
    put(ft, 'referrer', first[REFERRER]);
    put(ft, 'landing_page', first[LANDING]);
    ft.at = iso(first[AT]);
    out.first_touch = ft;
    return out;
  }

  function formFields(data) {
    var out = {}, key;
    for (key in data) {
      if (!data.hasOwnProperty(key)) continue;
      if (key === 'first_touch') {
        for (var sub in data[key]) if (data[key].hasOwnProperty(sub)) out['first_touch[' + sub + ']'] = data[key][sub];
      } else {
        out[key] = data[key];
      }
    }
    return out;
  }

  function fillable(el) {
    return el.tagName === 'TEXTAREA' || (el.tagName === 'INPUT' && /^(hidden|text|search|url)$/i.test(el.type));
  }

  // Hidden inputs for a plain post or a form builder. A value the form already has is never replaced;
  // an empty field of the form's own is filled. Without consent our values are taken out again.
  function fill(form, data) {
    var ours = {}, theirs = {}, el, name, i;
    for (i = 0; i < form.elements.length; i++) {
      el = form.elements[i];
      if (!el.name) continue;
      if (el.getAttribute(MARK)) ours[el.name] = el;
      else if (!theirs[el.name]) theirs[el.name] = el;
    }
    for (name in ours) {
      if (!ours.hasOwnProperty(name) || (data.hasOwnProperty(name) && !theirs[name])) continue;
      el = ours[name];
      if (el.getAttribute(MARK) === 'added') {
        el.parentNode.removeChild(el);
      } else {
        el.value = '';
        el.removeAttribute(MARK);
      }
      delete ours[name];
    }
    for (name in data) {
      if (!data.hasOwnProperty(name)) continue;
      el = ours[name];
      if (!el && theirs[name]) {
        el = theirs[name];
        if (el.value || !fillable(el)) continue;
        el.setAttribute(MARK, 'filled');
      }
      if (!el) {
        el = document.createElement('input');
        el.type = 'hidden';
        el.name = name;
        el.setAttribute(MARK, 'added');
        form.appendChild(el);
      }
      el.value = data[name];
    }
  }

  function fillForms() {  // saves too (through fields()) when the page has such forms; returns their number
    var forms = document.querySelectorAll('form[data-amocrm]');
    if (forms.length) {
      var data = formFields(fields());
      for (var i = 0; i < forms.length; i++) fill(forms[i], data);
    }
    return forms.length;
  }

  // Stored once the page's own scripts ran, so a consent flag set further down the page is seen first.
  function start() {
    if (!fillForms()) save();
    // A form about to be posted gets fresh values (and none when consent was withdrawn meanwhile).
    document.addEventListener('submit', function (event) {
      var form = event.target;
      if (form && form.getAttribute && form.getAttribute('data-amocrm') !== null) fill(form, formFields(fields()));
    }, true);
    // Forms added later (popups, form builders) are filled when they appear.
    if (window.MutationObserver) {
      new MutationObserver(function (records) {
        for (var i = 0; i < records.length; i++) {
          var nodes = records[i].addedNodes;
          for (var j = 0; j < nodes.length; j++) {
            if (nodes[j].nodeType === 1 && (nodes[j].tagName === 'FORM' || nodes[j].getElementsByTagName('form').length)) {
              return fillForms();
            }
          }
        }
      }).observe(document.documentElement, {childList: true, subtree: true});
    }
    // Consent withdrawn after the page loaded: remove what this page stored.
    window.addEventListener('pagehide', function () {
      if (withheld()) forget();
    });
  }

  var state;
  if (withheld()) {
    forget();
    state = visit(merge(null, null));
  } else {
    state = load();
    if (cookieDomain === null) cookieDomain = findCookieDomain();  // a first visit: the referrer check needs it
    state = visit(state);
  }

  window.amocrmTracker = {fields: fields};
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})(window, document);
