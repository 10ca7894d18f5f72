// The customer's wallet in the browser: the dialogue of `tolem wallet` (crates/mpp/src/wallet/)
// over the reference MPP's app API on this origin. Money is integer tiyn kept as strings of
// digits; it is never parsed as a floating-point number.
'use strict';

(() => {
  const API = '/app/v1';
  /** How often the account is read again, so that a refund shows up on its own. */
  const POLL_MS = 5000;
  /** The largest picture the MPP reads (app_api.rs QR_IMAGE_BYTES_MAX). */
  const IMAGE_BYTES_MAX = 4 * 1024 * 1024;
  /** How often a camera frame is searched for a QR code. */
  const CAMERA_SCAN_MS = 250;
  const CUSTOMER_KEY = 'tolem.wallet.customer';
  const LOCALE_KEY = 'tolem.locale';
  const LOCALES = ['ru', 'kk'];

  const config = JSON.parse(document.getElementById('config').textContent);
  const $ = (id) => document.getElementById(id);

  const state = {
    locale: 'ru',
    customer: null,
    account: null,
    scan: null, // the app API's ScanView of the payment on screen
    checkedOut: null, // a Custom payment's amount once checkout answered (wire form)
    result: null, // what the last payment ended with, to show again in another language
    status: null, // {key, vars, kind} of the line in #status
    busy: 0,
    camera: null, // {stream, timer} while the camera is open
    polling: false,
  };

  // ---- texts -------------------------------------------------------------------------------

  function template(key) {
    const table = config.texts[state.locale] || config.texts.ru;
    return table[key] ?? key;
  }

  /** The text `key` with `{name}` filled from `vars`; a value may be a DOM node (a link). */
  function nodes(key, vars = {}) {
    const fragment = document.createDocumentFragment();
    template(key).split(/\{(\w+)\}/).forEach((piece, i) => {
      if (i % 2 === 0) {
        if (piece) fragment.append(document.createTextNode(piece));
        return;
      }
      const value = vars[piece];
      if (value instanceof Node) fragment.append(value);
      else fragment.append(document.createTextNode(value === undefined ? `{${piece}}` : String(value)));
    });
    return fragment;
  }

  function t(key, vars) {
    const holder = document.createElement('span');
    holder.append(nodes(key, vars));
    return holder.textContent;
  }

  function show(element, key, vars) {
    element.replaceChildren(nodes(key, vars));
  }

  // ---- money: strings of digits, never floats ------------------------------------------------

  /** `1 500,00 ₸` from a count of tiyn written in digits (as tolem_wire's Amount::human). */
  function money(tiyn) {
    let digits = String(tiyn).replace(/^0+(?=\d)/, '');
    while (digits.length < 3) digits = `0${digits}`;
    const whole = digits.slice(0, -2).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
    return `${whole},${digits.slice(-2)} ₸`;
  }

  /** `+50 000,00 ₸` or `−1 500,00 ₸` from a signed count of tiyn in digits. */
  function signedMoney(tiyn) {
    const text = String(tiyn);
    return text.startsWith('-') ? `−${money(text.slice(1))}` : `+${money(text)}`;
  }

  /** Tiyn in digits from the MPP API's amount (`"1500.00"`), or null. */
  function tiynOfWire(amount) {
    const m = /^(\d+)(?:\.(\d{1,2}))?$/.exec(String(amount ?? ''));
    if (!m) return null;
    return `${m[1]}${(m[2] || '').padEnd(2, '0')}`.replace(/^0+(?=\d)/, '');
  }

  /** Tiyn in digits from a JSON integer: exact only below 2^53, so anything else is refused. */
  function tiynOfInteger(n) {
    return Number.isSafeInteger(n) ? String(n) : null;
  }

  /**
   * Whole tenge as the customer types it (`500`, `1 500`, `500,00`, `500.00 ₸`), as the app API
   * takes a Static amount: digits only, above zero, no tiyn (wallet/dialogue.rs parse_tenge).
   * Returns the tenge in digits, or null.
   */
  function parseTenge(text) {
    const compact = String(text).replace(/\s/g, '').replace(/,/g, '.').replace(/₸$/, '');
    const m = /^(\d+)(?:\.(\d{1,2}))?$/.exec(compact);
    if (!m || /[1-9]/.test(m[2] || '')) return null;
    const tenge = m[1].replace(/^0+/, '');
    // An amount has at most 15 digits with its two decimals (tolem_wire AMOUNT_DIGITS_MAX).
    if (tenge === '' || tenge.length > 13) return null;
    return tenge;
  }

  /** The receipt in the wallet's language: the PS's link, plus `&locale=kk` in Kazakh. */
  function receiptLink(link) {
    return state.locale === 'kk' ? `${link}&locale=kk` : link;
  }

  function receiptAnchor(link, anchor = document.createElement('a')) {
    anchor.href = receiptLink(link);
    anchor.textContent = receiptLink(link);
    anchor.rel = 'noreferrer';
    anchor.target = '_blank';
    anchor.hidden = false;
    return anchor;
  }

  /** `01.03.2025 14:05` in the operator's time zone, as `tolem wallet history` writes it. */
  function when(ms) {
    try {
      const parts = new Intl.DateTimeFormat('ru-RU', {
        timeZone: config.zone, year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
      }).formatToParts(new Date(ms));
      const part = (type) => (parts.find((p) => p.type === type) || {}).value || '';
      return `${part('day')}.${part('month')}.${part('year')} ${part('hour')}:${part('minute')}`;
    } catch (_) {
      return String(ms);
    }
  }

  // ---- the app API ---------------------------------------------------------------------------

  async function api(method, path, body, raw) {
    const init = { method, cache: 'no-store', headers: {} };
    if (raw !== undefined) {
      init.body = raw;
      init.headers['Content-Type'] = raw.type || 'application/octet-stream';
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (e) {
      throw { status: 0, message: String(e) };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const message = (data && typeof data.error === 'string') ? data.error : response.statusText;
      throw { status: response.status, message };
    }
    return data;
  }

  /** An error of the app API, worded in the page's language. */
  function errorText(e) {
    const message = String(e.message || '');
    if (e.status === 0) return t('unreachable');
    if (message === 'not enough money') return t('insufficient');
    const unknown = /^unknown customer (.*)$/.exec(message);
    if (unknown) return t('unknown_customer', { id: unknown[1] });
    const refused = /^the PS answered (.*)$/.exec(message);
    if (refused) return t('ps_refused', { why: refused[1] });
    return t('mpp_error', { status: e.status, message });
  }

  // ---- status line and busy state ------------------------------------------------------------

  function say(key, vars, kind = 'ok') {
    state.status = key ? { key, vars, kind } : null;
    renderStatus();
  }

  function sayError(e) {
    state.status = { text: errorText(e), error: e, kind: 'error' };
    renderStatus();
  }

  function renderStatus() {
    const element = $('status');
    const s = state.status;
    element.dataset.status = s ? s.kind : 'idle';
    if (!s) element.textContent = '';
    else if (s.error) element.textContent = errorText(s.error);
    else if (s.text !== undefined) element.textContent = s.text;
    else show(element, s.key, s.vars);
  }

  async function busy(work) {
    // A disabled button loses the focus to the page: given back once the work is done, unless
    // the work led the focus elsewhere or hid the button.
    const had = document.activeElement;
    state.busy += 1;
    setDisabled(true);
    try {
      return await work();
    } finally {
      state.busy -= 1;
      if (state.busy === 0) {
        setDisabled(false);
        const lost = !document.activeElement || document.activeElement === document.body;
        if (lost && had && had !== document.body && had.getClientRects().length > 0) had.focus();
      }
    }
  }

  function setDisabled(disabled) {
    for (const id of ['sign-in', 'scan', 'image', 'camera', 'pay', 'back']) $(id).disabled = disabled;
  }

  // ---- language ------------------------------------------------------------------------------

  function chooseLocale() {
    const asked = new URLSearchParams(location.search).get('locale');
    if (LOCALES.includes(asked)) return asked;
    try {
      const kept = localStorage.getItem(LOCALE_KEY);
      if (LOCALES.includes(kept)) return kept;
    } catch (_) { /* storage may be off: the default then */ }
    return 'ru';
  }

  function setLocale(locale) {
    state.locale = locale;
    try { localStorage.setItem(LOCALE_KEY, locale); } catch (_) { /* not remembered */ }
    const url = new URL(location.href);
    if (url.searchParams.has('locale')) {
      url.searchParams.set('locale', locale);
      history.replaceState(null, '', url);
    }
    render();
  }

  function render() {
    document.documentElement.lang = state.locale;
    document.title = `Tolem — ${t('title')}`;
    for (const element of document.querySelectorAll('[data-t]')) show(element, element.dataset.t);
    for (const locale of LOCALES) $(`locale-${locale}`).setAttribute('aria-pressed', String(locale === state.locale));
    renderStatus();
    renderAccount();
    renderPayment();
    renderResult();
  }

  // ---- sign-in and the account ---------------------------------------------------------------

  async function signIn(id, quiet) {
    const customer = id.trim();
    if (!customer) {
      say('empty_customer', {}, 'error');
      $('customer').focus();
      return;
    }
    try {
      const account = await busy(() => api('GET', `/customers/${encodeURIComponent(customer)}`));
      state.customer = customer;
      state.account = account;
      try { localStorage.setItem(CUSTOMER_KEY, customer); } catch (_) { /* not remembered */ }
      $('signin-view').hidden = true;
      $('wallet-view').hidden = false;
      if (!quiet) say(null);
      resetPayment();
      renderAccount();
      $('token').focus();
    } catch (e) {
      sayError(e);
    }
  }

  function signOut() {
    stopCamera();
    state.customer = null;
    state.account = null;
    try { localStorage.removeItem(CUSTOMER_KEY); } catch (_) { /* nothing kept */ }
    resetPayment();
    // Nothing of this customer stays in the page, hidden or not.
    $('who').textContent = '';
    $('balance').textContent = '';
    $('balance').dataset.tiyn = '';
    $('history').replaceChildren();
    $('notifications').replaceChildren();
    drawn = null;
    $('token').value = '';
    $('customer').value = '';
    $('wallet-view').hidden = true;
    $('signin-view').hidden = false;
    say(null);
    $('customer').focus();
  }

  async function refreshAccount(quiet) {
    if (!state.customer) return;
    const customer = state.customer;
    try {
      const account = await api('GET', `/customers/${encodeURIComponent(customer)}`);
      if (state.customer !== customer) return;
      state.account = account;
      renderAccount();
    } catch (e) {
      if (!quiet) sayError(e);
    }
  }

  /** The ledger's reference (`payment 7`, `refund 12 of payment 7`, `payment 7 (CODE)`) in the
   * page's language; any other text as it is. */
  function reference(text) {
    const t = config.texts[state.locale];
    const fill = (template, values) =>
      template.replace(/\{(\w+)\}/g, (whole, name) => values[name] ?? whole);
    let m = /^refund (\S+) of payment (\S+)$/.exec(text);
    if (m) return fill(t.ref_refund, { refund: m[1], id: m[2] });
    m = /^payment (\S+) \((.+)\)$/.exec(text);
    if (m) return fill(t.ref_reversal, { id: m[1], code: m[2] });
    m = /^payment (\S+)$/.exec(text);
    if (m) return fill(t.ref_payment, { id: m[1] });
    return text;
  }

  // What the account's lists were last drawn from: the 5-second refresh redraws nothing that did
  // not change, so a keyboard's focus on a receipt link stays where it is.
  let drawn = null;

  function renderAccount() {
    const account = state.account;
    if (!account) {
      drawn = null;
      return;
    }
    const drawing = JSON.stringify([state.locale, account]);
    if (drawing === drawn) return;
    drawn = drawing;
    $('who').textContent = `${account.name} (${account.customer_id})`;
    const balance = tiynOfInteger(account.balance_tiyn);
    $('balance').dataset.tiyn = balance ?? '';
    $('balance').textContent = balance === null ? '—'
      : (balance.startsWith('-') ? signedMoney(balance) : money(balance));

    const history = (account.history || []).map((movement) => {
      const li = document.createElement('li');
      li.dataset.kind = movement.kind;
      const tiyn = tiynOfInteger(movement.tiyn);
      const amount = document.createElement('span');
      amount.className = tiyn && !tiyn.startsWith('-') ? 'amount in' : 'amount';
      amount.textContent = tiyn === null ? '—' : signedMoney(tiyn);
      const kind = config.texts[state.locale][`kind_${movement.kind}`] ?? movement.kind;
      const meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = `${when(movement.at_ms)} · ${reference(movement.reference)}`;
      li.append(amount, document.createTextNode(` ${kind}`), meta);
      return li;
    });
    $('history').replaceChildren(...(history.length ? history : [empty()]));

    const notices = (account.notifications || []).map((notice) => {
      const li = document.createElement('li');
      li.dataset.kind = notice.kind;
      const amount = tiynOfWire(notice.amount);
      const vars = { amount: amount === null ? '—' : money(amount) };
      if (notice.kind === 'paid') show(li, 'notice_paid', { ...vars, merchant: notice.merchant });
      else if (notice.kind === 'rejected') show(li, 'notice_rejected', { ...vars, code: notice.code });
      else if (notice.kind === 'refunded') {
        const link = receiptAnchor(notice.receipt);
        link.className = 'receipt';
        show(li, 'notice_refunded', { ...vars, receipt: link });
      } else li.textContent = notice.text ?? '';
      return li;
    });
    $('notifications').replaceChildren(...(notices.length ? notices : [empty()]));
  }

  function empty() {
    const li = document.createElement('li');
    li.className = 'empty';
    show(li, 'nothing_yet');
    return li;
  }

  // ---- scanning ------------------------------------------------------------------------------

  async function scan(token) {
    const qrCode = token.trim();
    if (!qrCode) {
      say('empty_token', {}, 'error');
      $('token').focus();
      return;
    }
    stopCamera();
    say('working', {}, 'busy');
    try {
      const view = await busy(() => api('POST', '/scan', {
        customer_id: state.customer, qr_code: qrCode, locale: state.locale,
      }));
      say(null);
      if (view.kind === 'Refund') {
        resetPayment();
        state.result = { refund: view.refund_id || '' };
        renderResult();
        return;
      }
      state.scan = view;
      state.checkedOut = null;
      state.result = null;
      buildForm(view);
      $('pay-amount').value = '';
      renderPayment();
      renderResult();
      // Never the pay button: the Enter that scanned, pressed twice or held, would pay what the
      // customer has not seen yet. The first field to fill, else the payment's heading.
      const first = document.querySelector('#service-form select, #service-form input, #amount-field:not([hidden]) input');
      (first || $('payment-title')).focus();
    } catch (e) {
      sayError(e);
    }
  }

  async function decodeImage(file) {
    if (!file) return;
    if (file.size > IMAGE_BYTES_MAX) {
      say('image_too_large', {}, 'error');
      return;
    }
    say('reading_image', {}, 'busy');
    try {
      const answer = await busy(() => api('POST', `/qr/decode?locale=${state.locale}`, undefined, file));
      $('token').value = answer.qrCode;
      await scan(answer.qrCode);
    } catch (e) {
      // The MPP words picture errors in the language asked; others are the app API's.
      if (e.status === 400 || e.status === 413 || e.status === 422) {
        state.status = { text: e.message, kind: 'error' };
        renderStatus();
      } else sayError(e);
    }
  }

  async function cameraAvailable() {
    if (!('BarcodeDetector' in window) || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return false;
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      return formats.includes('qr_code');
    } catch (_) {
      return false;
    }
  }

  async function startCamera() {
    if (state.camera) return;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
      const detector = new window.BarcodeDetector({ formats: ['qr_code'] });
      const video = $('video');
      video.srcObject = stream;
      $('camera-view').hidden = false;
      await video.play();
      const camera = { stream, timer: null };
      state.camera = camera;
      const look = async () => {
        if (state.camera !== camera) return;
        try {
          const codes = await detector.detect(video);
          const found = codes.find((c) => c.rawValue);
          if (found && state.camera === camera) {
            $('token').value = found.rawValue;
            await scan(found.rawValue);
            return;
          }
        } catch (_) { /* a frame that cannot be read: try the next one */ }
        if (state.camera === camera) camera.timer = setTimeout(look, CAMERA_SCAN_MS);
      };
      look();
    } catch (e) {
      stopCamera();
      say('camera_failed', { why: e && e.name ? e.name : String(e) }, 'error');
    }
  }

  function stopCamera() {
    const camera = state.camera;
    state.camera = null;
    if (camera) {
      clearTimeout(camera.timer);
      for (const track of camera.stream.getTracks()) track.stop();
    }
    $('video').srcObject = null;
    $('camera-view').hidden = true;
  }

  // ---- paying --------------------------------------------------------------------------------

  /** The Custom form: a select for a parameter with options, an input for free text. */
  function buildForm(view) {
    const form = $('service-form');
    form.replaceChildren();
    const service = view.kind === 'Custom' ? view.service : null;
    form.hidden = !service;
    if (!service) return;
    for (const parameter of service.parameters || []) {
      if (parameter.value) {
        // Filled by the PS: shown, and sent back as it is.
        const p = document.createElement('p');
        p.textContent = `${parameter.name}: ${parameter.value}`;
        form.append(p);
        continue;
      }
      const id = `param-${parameter.id}`;
      const label = document.createElement('label');
      label.htmlFor = id;
      label.textContent = parameter.name;
      let control;
      if (parameter.options && parameter.options.length) {
        control = document.createElement('select');
        const none = document.createElement('option');
        none.value = '';
        none.dataset.t = 'choose';
        none.textContent = t('choose');
        control.append(none);
        for (const option of parameter.options) {
          const item = document.createElement('option');
          item.value = option.key;
          item.textContent = option.description ? `${option.label} — ${option.description}` : option.label;
          control.append(item);
        }
      } else {
        control = document.createElement('input');
        control.autocomplete = 'off';
        control.maxLength = 256;
      }
      control.id = id;
      control.name = id;
      control.dataset.parameterId = String(parameter.id);
      form.append(label, control);
    }
  }

  function renderPayment() {
    const view = state.scan;
    $('payment-view').hidden = !view;
    $('scan-view').hidden = Boolean(view) || Boolean(state.result);
    if (!view) return;
    if (view.merchant) {
      show($('merchant'), 'merchant', { name: view.merchant.merchantName, mcc: view.merchant.merchantMCC });
    } else $('merchant').textContent = '';
    const service = view.kind === 'Custom' && view.service;
    if (service) show($('service'), 'service', { name: service.serviceName });
    else $('service').textContent = '';
    $('amount-field').hidden = view.kind !== 'Static';

    let due = null;
    if (view.kind === 'Dynamic') due = tiynOfWire(view.amount);
    else if (view.kind === 'Custom' && state.checkedOut) due = tiynOfWire(state.checkedOut);
    else if (view.kind === 'Static') {
      const tenge = parseTenge($('pay-amount').value);
      due = tenge && `${tenge}00`;
    }
    if (due) show($('due'), 'due', { amount: money(due) });
    else $('due').textContent = '';
    $('due').dataset.tiyn = due || '';

    const until = /T(\d{2}:\d{2}:\d{2})/.exec(view.can_confirm_until || '');
    if (view.can_confirm_until) show($('until'), 'until', { time: until ? until[1] : view.can_confirm_until });
    else $('until').textContent = '';

    const step = view.kind === 'Custom' && !state.checkedOut ? 'checkout' : 'pay';
    $('pay').dataset.step = step;
    show($('pay'), step);
    for (const control of $('service-form').querySelectorAll('select, input')) control.disabled = Boolean(state.checkedOut);
    for (const option of $('service-form').querySelectorAll('option[data-t]')) option.textContent = t('choose');
  }

  function resetPayment() {
    state.scan = null;
    state.checkedOut = null;
    state.result = null;
    buildForm({ kind: 'none' });
    renderPayment();
    renderResult();
  }

  async function pay() {
    const view = state.scan;
    if (!view) return;
    const ids = { customer_id: state.customer, payment_id: view.payment_id, locale: state.locale };
    if (view.kind === 'Custom' && !state.checkedOut) {
      const parameters = [];
      for (const parameter of view.service.parameters || []) {
        if (parameter.value) {
          parameters.push({ id: parameter.id, value: parameter.value });
          continue;
        }
        const control = $(`param-${parameter.id}`);
        const value = control ? control.value.trim() : '';
        if (!value) {
          say('fill_field', { name: parameter.name }, 'error');
          if (control) control.focus();
          return;
        }
        parameters.push({ id: parameter.id, value });
      }
      say('working', {}, 'busy');
      try {
        const answer = await busy(() => api('POST', '/checkout', { ...ids, parameters }));
        state.checkedOut = answer.amount;
        say('checked_out');
        renderPayment();
        // The amount to confirm, not the pay button (a second Enter would pay it unseen).
        $('due').focus();
      } catch (e) {
        sayError(e);
      }
      return;
    }
    let amount;
    if (view.kind === 'Static') {
      const tenge = parseTenge($('pay-amount').value);
      if (!tenge) {
        say('bad_amount', {}, 'error');
        $('pay-amount').focus();
        return;
      }
      amount = tenge;
    }
    say('working', {}, 'busy');
    try {
      const body = amount === undefined ? ids : { ...ids, amount };
      const paid = await busy(() => api('POST', '/confirm', body));
      finish({ view: paid });
    } catch (e) {
      // Not enough money and the like end the payment (the MPP told the PS it failed).
      finish({ error: e });
    }
  }

  async function back() {
    const view = state.scan;
    if (!view) return;
    say('working', {}, 'busy');
    try {
      const answer = await busy(() => api('POST', '/back', {
        customer_id: state.customer, payment_id: view.payment_id, locale: state.locale,
      }));
      finish({ view: answer });
    } catch (e) {
      sayError(e);
    }
  }

  function finish(result) {
    say(null);
    state.scan = null;
    state.checkedOut = null;
    state.result = result;
    buildForm({ kind: 'none' });
    renderPayment();
    renderResult();
    $('result').focus();
    refreshAccount(true);
  }

  function renderResult() {
    const result = state.result;
    $('result-view').hidden = !result;
    const element = $('result');
    const receipt = $('receipt');
    receipt.hidden = true;
    receipt.parentElement.replaceChildren(receipt);
    if (!result) {
      element.dataset.outcome = '';
      element.textContent = '';
      return;
    }
    element.tabIndex = -1;
    if (result.refund !== undefined) {
      element.dataset.outcome = 'refund';
      show(element, 'refund_qr', { id: result.refund ? ` №${result.refund}` : '' });
      return;
    }
    if (result.error) {
      element.dataset.outcome = 'failed';
      element.textContent = errorText(result.error);
      return;
    }
    const view = result.view;
    const amount = tiynOfWire(view.amount);
    switch (view.status) {
      case 'paid':
        element.dataset.outcome = 'paid';
        if (amount) show(element, 'paid', { amount: money(amount) });
        else element.textContent = t('paid').replace(/:?\s*\{amount\}/, '');
        break;
      case 'rejected':
        element.dataset.outcome = 'refused';
        show(element, 'rejected', { code: view.ps_code || '—' });
        break;
      case 'cancelled':
        element.dataset.outcome = 'refused';
        show(element, 'cancelled');
        break;
      case 'pending':
        element.dataset.outcome = 'pending';
        show(element, 'pending');
        break;
      default:
        element.dataset.outcome = 'failed';
        show(element, 'other_status', { status: view.status });
    }
    if (view.receipt) {
      receiptAnchor(view.receipt, receipt);
      show(receipt.parentElement, 'receipt', { receipt });
    }
  }

  // ---- wiring --------------------------------------------------------------------------------

  function start() {
    state.locale = chooseLocale();
    for (const locale of LOCALES) $(`locale-${locale}`).addEventListener('click', () => setLocale(locale));
    $('signin-form').addEventListener('submit', (e) => { e.preventDefault(); signIn($('customer').value); });
    $('sign-out').addEventListener('click', signOut);
    $('refresh').addEventListener('click', () => busy(() => refreshAccount(false)));
    $('scan-form').addEventListener('submit', (e) => { e.preventDefault(); scan($('token').value); });
    $('image').addEventListener('change', (e) => {
      const file = e.target.files && e.target.files[0];
      decodeImage(file).finally(() => { e.target.value = ''; });
    });
    $('camera').addEventListener('click', startCamera);
    $('camera-stop').addEventListener('click', stopCamera);
    $('service-form').addEventListener('submit', (e) => { e.preventDefault(); pay(); });
    $('pay-amount').addEventListener('input', renderPayment);
    $('pay-amount').addEventListener('keydown', (e) => { if (e.key === 'Enter') pay(); });
    $('pay').addEventListener('click', pay);
    $('back').addEventListener('click', back);
    $('again').addEventListener('click', () => { resetPayment(); say(null); $('token').value = ''; $('token').focus(); });
    cameraAvailable().then((yes) => { $('camera').hidden = !yes; });
    render();
    setInterval(() => {
      if (state.customer && !document.hidden && !state.polling) {
        state.polling = true;
        refreshAccount(true).finally(() => { state.polling = false; });
      }
    }, POLL_MS);
    let kept = null;
    try { kept = localStorage.getItem(CUSTOMER_KEY); } catch (_) { /* none kept */ }
    if (kept) {
      $('customer').value = kept;
      signIn(kept, true);
    } else $('customer').focus();
  }

  start();
})();
