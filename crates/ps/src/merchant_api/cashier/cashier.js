// The cashier screen: a POS in the browser. It speaks the merchant API exactly as POS software
// does (docs/merchant-api.md): same origin, the organization's key in `Api-Key`, messages in the
// page's language through `Accept-Language`. Money is never a floating-point number here: amounts
// are typed as text, turned into integer tiyn with string arithmetic, sent as decimal strings, and
// the PS's amounts are read from its JSON as the text it sent.
"use strict";

(() => {
  const TEXTS = JSON.parse(document.getElementById("texts").textContent);
  const LOCALES = ["ru", "kk"];
  const $ = (id) => document.getElementById(id);

  // Where things are remembered: the key with the tab (sessionStorage), the device and the
  // language with the browser (localStorage).
  const KEY_SLOT = "tolem.pos.key";
  const LOCALE_SLOT = "tolem.locale";
  const DEVICE_ID_SLOT = "tolem.pos.device-id";
  const deviceSlot = (bin) => "tolem.pos.device." + bin;
  // The sale on screen, with the tab: a reload finds it and asks its status again.
  const saleSlot = (bin) => "tolem.pos.sale." + bin;

  // How often a status is asked, and how long past its deadline before the page stops asking.
  const POLL_MS = 1000;
  const GRACE_MS = 30000;
  // The PS's own limit (tolem_wire AMOUNT_DIGITS_MAX): 13 digits of tenge, 2 of tiyn.
  const TENGE_DIGITS_MAX = 13;
  // The ids and amounts of the merchant API's answers, kept as the text the PS sent.
  const EXACT_FIELDS = /"(Amount|TotalAmount|AvailableReturnAmount|QrPaymentId|QrReturnId|ReturnOperationId|TransactionId|TradePointId|PaymentId)"\s*:\s*(-?[0-9][0-9.eE+-]*)/g;

  let locale = initialLocale();
  let apiKey = null;
  let organization = null; // {bin, name}
  let device = null; // {token, id, tradePointId, tradePointName}
  let sale = null; // the QR on screen: {id, timer, deadline, status, ...}
  let ret = null; // the return QR on screen: {id, timer, deadline, status, chosen}
  let plainAttempt = null; // a refund without the customer not answered yet: {what, id}
  // A refund typed and waiting for the cashier's "yes": {tiyn, paymentId} (and `ret` for r2).
  let pendingReturn = null;
  let pendingPlain = null;
  let clockSkewMs = 0;

  // ---- language -------------------------------------------------------------------------------

  function initialLocale() {
    const asked = new URLSearchParams(location.search).get("locale");
    if (LOCALES.includes(asked)) {
      remember(localStorage, LOCALE_SLOT, asked);
      return asked;
    }
    const kept = read(localStorage, LOCALE_SLOT);
    return LOCALES.includes(kept) ? kept : "ru";
  }

  /** The text `key` in the page's language, with `{name}` replaced from `vars`. */
  function tr(key, vars) {
    let text = TEXTS[locale][key] ?? TEXTS.ru[key] ?? key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  // What the page wrote in its own words, as key and values, so that a change of language
  // rewrites it too; a message of the PS's stays as the PS wrote it.
  const said = new Map();

  /** Writes the text `key` into `el`, kept for a change of language. */
  function say(el, key, vars) {
    said.set(el, { key, vars });
    el.textContent = tr(key, vars);
  }

  /** Writes `text` (the PS's, or nothing) into `el`. */
  function unsay(el, text) {
    said.delete(el);
    el.textContent = text;
  }

  function setLocale(next) {
    locale = next;
    remember(localStorage, LOCALE_SLOT, next);
    paintTexts();
    repaint();
  }

  function paintTexts() {
    document.documentElement.lang = locale;
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = tr(el.dataset.t);
    for (const el of document.querySelectorAll("[data-t-placeholder]")) {
      el.placeholder = tr(el.dataset.tPlaceholder);
    }
    for (const code of LOCALES) {
      $("locale-" + code).setAttribute("aria-pressed", String(code === locale));
    }
    for (const [el, { key, vars }] of said) {
      if (el.isConnected) el.textContent = tr(key, vars);
      else said.delete(el);
    }
    $("qr").alt = tr("sale.qr_alt");
    $("return-qr").alt = tr("return.qr_alt");
  }

  // ---- storage that may be refused (private modes) ---------------------------------------------

  function read(storage, slot) {
    try {
      return storage.getItem(slot);
    } catch {
      return null;
    }
  }

  function remember(storage, slot, value) {
    try {
      if (value === null) storage.removeItem(slot);
      else storage.setItem(slot, value);
    } catch {
      // Not remembered: the page still works for this visit.
    }
  }

  // ---- money as text ----------------------------------------------------------------------------

  /**
   * Tenge as a person types them (`1500`, `1 500`, `1500,50`, `1500.5`) into integer tiyn as a
   * decimal string: `{tiyn: "150050"}`, or `{error: key}` of the text that says what is wrong.
   */
  function parseTenge(typed) {
    const text = String(typed).replace(/[\s\u00a0\u202f']/g, "");
    if (text === "") return { error: "amount.empty" };
    const parts = /^([0-9]+)(?:[.,]([0-9]*))?$/.exec(text);
    if (!parts) return { error: /^-/.test(text) ? "amount.zero" : "amount.not_number" };
    const fraction = parts[2] ?? "";
    if (fraction.length > 2) return { error: "amount.decimals" };
    const whole = parts[1].replace(/^0+(?=[0-9])/, "");
    if (whole.length > TENGE_DIGITS_MAX) return { error: "amount.too_large" };
    const tiyn = (whole + fraction.padEnd(2, "0")).replace(/^0+/, "");
    if (tiyn === "") return { error: "amount.zero" };
    return { tiyn };
  }

  /** Integer tiyn (a decimal string) as the merchant API takes it: `1500.50`. */
  function wireAmount(tiyn) {
    const padded = tiyn.padStart(3, "0");
    return padded.slice(0, -2) + "." + padded.slice(-2);
  }

  /** Integer tiyn as the PS writes money for a person: `1 500,50 ₸`. */
  function humanAmount(tiyn) {
    const padded = tiyn.padStart(3, "0");
    const whole = padded.slice(0, -2);
    let grouped = "";
    for (let i = 0; i < whole.length; i++) {
      if (i > 0 && (whole.length - i) % 3 === 0) grouped += " ";
      grouped += whole[i];
    }
    return grouped + "," + padded.slice(-2) + " ₸";
  }

  /** An amount of the PS's answer (the text it sent, e.g. `1500.00`) for a person. */
  function shownAmount(sent) {
    const parsed = parseTenge(sent ?? "");
    return parsed.tiyn ? humanAmount(parsed.tiyn) : parsed.error === "amount.zero" ? humanAmount("0") : String(sent ?? "");
  }

  /** An amount of the PS's answer as the page's input shows it: `1500,00`. */
  function typedAmount(sent) {
    const parsed = parseTenge(sent ?? "");
    if (!parsed.tiyn) return "";
    const padded = parsed.tiyn.padStart(3, "0");
    // Grouped by thousands as amounts are shown (`1 000,00`); the parser takes the spaces back.
    const tenge = padded.slice(0, -2).replace(/\B(?=(\d{3})+(?!\d))/g, " ");
    return tenge + "," + padded.slice(-2);
  }

  // ---- the merchant API -------------------------------------------------------------------------

  function newRequestId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /**
   * One call of the merchant API: its envelope `{StatusCode, Message, Data}`, with ids and
   * amounts as text. A network failure or an answer that is not the envelope comes back as an
   * envelope with `StatusCode: null` and a message in the page's language.
   */
  async function api(method, path, body, requestId) {
    const headers = { "Api-Key": apiKey || "", "Accept-Language": locale };
    // Same-origin credentials: outside the sandbox r2 and r3 know the merchant by the TLS client
    // certificate the browser presents (DECISIONS 41); the page sets no cookies.
    const init = { method, headers, cache: "no-store", credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      // Repeated by the device with the same id and body, a creating call is answered once
      // (DECISIONS 29); each click is a new request unless the caller repeats one whose
      // answer it never had (`requestId`).
      headers["X-Request-ID"] = requestId || newRequestId();
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      return { StatusCode: null, Message: tr("error.network") };
    }
    const served = Date.parse(response.headers.get("Date") || "");
    if (Number.isFinite(served) && Math.abs(served - Date.now()) > 2000) {
      clockSkewMs = served - Date.now();
    }
    const text = await response.text();
    try {
      const answer = JSON.parse(text.replace(EXACT_FIELDS, '"$1":"$2"'));
      if (answer && typeof answer === "object" && "StatusCode" in answer) return answer;
    } catch {
      // Not JSON: said below.
    }
    return { StatusCode: null, Message: tr("error.http", { status: response.status }) };
  }

  function now() {
    return Date.now() + clockSkewMs;
  }

  /** Shows an answer's failure in `el`: the PS's own message (in the page's language). */
  function showFailure(el, answer) {
    if (answer.Message) unsay(el, answer.Message);
    else say(el, "error.http", { status: "?" });
  }

  // ---- sign-in ----------------------------------------------------------------------------------

  async function signIn(key, quiet) {
    unsay($("sign-in-error"), "");
    if (!key) {
      if (!quiet) say($("sign-in-error"), "sign_in.empty");
      return;
    }
    apiKey = key;
    const points = await api("GET", "/r1/v01/partner/tradepoints");
    if (points.StatusCode === -10000 || points.StatusCode === null) {
      apiKey = null;
      remember(sessionStorage, KEY_SLOT, null);
      if (points.StatusCode === -10000) say($("sign-in-error"), "sign_in.wrong_key");
      else unsay($("sign-in-error"), points.Message);
      return;
    }
    const org = await api("GET", "/pos/organization");
    if (org.StatusCode !== 0) {
      apiKey = null;
      showFailure($("sign-in-error"), org);
      return;
    }
    remember(sessionStorage, KEY_SLOT, key);
    organization = { bin: org.Data.OrganizationBin, name: org.Data.OrganizationName };
    $("api-key").value = "";
    fillTradePoints(points);
    loadDevice();
    restoreSale();
    $("sign-in-section").hidden = true;
    $("till").hidden = false;
    $("sign-out").hidden = false;
    repaint();
  }

  function signOut() {
    stopSale();
    stopReturn();
    if (organization) remember(sessionStorage, saleSlot(organization.bin), null);
    apiKey = null;
    organization = null;
    device = null;
    remember(sessionStorage, KEY_SLOT, null);
    $("till").hidden = true;
    $("sign-out").hidden = true;
    $("sign-in-section").hidden = false;
    $("organization").textContent = "";
    for (const id of ["sale-error", "return-error", "device-error", "refund-result", "plain-result"]) {
      unsay($(id), "");
    }
    unask("plain");
    $("api-key").focus();
  }

  // ---- the device -------------------------------------------------------------------------------

  function fillTradePoints(answer) {
    const select = $("trade-point");
    select.replaceChildren();
    unsay($("device-error"), "");
    if (answer.StatusCode !== 0 || !Array.isArray(answer.Data)) {
      showFailure($("device-error"), answer);
      return;
    }
    for (const point of answer.Data) {
      const option = document.createElement("option");
      option.value = String(point.TradePointId);
      option.textContent = point.TradePointName + " — " + point.TradePointId;
      option.dataset.name = point.TradePointName;
      select.append(option);
    }
  }

  function deviceId() {
    let id = read(localStorage, DEVICE_ID_SLOT);
    if (!id || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
      id = "WEB-" + newRequestId().slice(0, 12).toUpperCase();
      remember(localStorage, DEVICE_ID_SLOT, id);
    }
    return id;
  }

  function loadDevice() {
    device = null;
    try {
      const kept = JSON.parse(read(localStorage, deviceSlot(organization.bin)) || "null");
      if (kept && typeof kept.token === "string") device = kept;
    } catch {
      device = null;
    }
    if (device) $("trade-point").value = device.tradePointId;
  }

  function forgetDevice() {
    device = null;
    if (organization) remember(localStorage, deviceSlot(organization.bin), null);
    repaint();
  }

  async function register() {
    const select = $("trade-point");
    unsay($("device-error"), "");
    if (!select.value) {
      say($("device-error"), "device.no_points");
      return;
    }
    const point = { id: select.value, name: select.selectedOptions[0]?.dataset.name || select.value };
    await busy($("register"), async () => {
      // A till moved to another trade point leaves the old one first, so that its DeviceId is free.
      if (device && device.tradePointId !== point.id) {
        await api("POST", "/r1/v01/device/delete", { DeviceToken: device.token });
      }
      let answer = await api("POST", "/r1/v01/device/register", {
        DeviceId: deviceId(),
        TradePointId: point.id,
      });
      if (answer.StatusCode === -1503) {
        // This browser's DeviceId is bound elsewhere and its token is lost: take a new one.
        remember(localStorage, DEVICE_ID_SLOT, null);
        answer = await api("POST", "/r1/v01/device/register", {
          DeviceId: deviceId(),
          TradePointId: point.id,
        });
      }
      if (answer.StatusCode !== 0) {
        showFailure($("device-error"), answer);
        return;
      }
      device = {
        token: answer.Data.DeviceToken,
        id: deviceId(),
        tradePointId: point.id,
        tradePointName: point.name,
      };
      remember(localStorage, deviceSlot(organization.bin), JSON.stringify(device));
      repaint();
    });
  }

  /** Whether a failure says the device is gone; then the page forgets it. */
  function deviceGone(answer) {
    if (answer.StatusCode === -1501 || answer.StatusCode === -1502) {
      forgetDevice();
      return true;
    }
    return false;
  }

  // ---- a sale -----------------------------------------------------------------------------------

  function stopSale() {
    if (sale) clearInterval(sale.timer);
    sale = null;
    $("sale").hidden = true;
    $("sale").classList.remove("expired");
  }

  async function createQr() {
    const error = $("sale-error");
    unsay(error, "");
    const amount = parseTenge($("amount").value);
    if (amount.error) {
      say(error, amount.error);
      $("amount").focus();
      return;
    }
    if (!device) {
      say(error, "device.needed");
      return;
    }
    await busy($("create-qr"), async () => {
      const answer = await api("POST", "/r1/v01/qr/create", {
        DeviceToken: device.token,
        Amount: wireAmount(amount.tiyn),
      });
      if (answer.StatusCode !== 0) {
        if (deviceGone(answer)) say(error, "device.forgotten");
        else showFailure(error, answer);
        return;
      }
      const data = answer.Data;
      const options = data.QrPaymentBehaviorOptions || {};
      const expires = Date.parse(data.ExpireDate);
      showSale({
        id: String(data.QrPaymentId),
        token: data.QrToken,
        tiyn: amount.tiyn,
        expires,
        // Scanned, a purchase waits for the buyer up to PaymentConfirmationTimeout more.
        giveUp: expires + (Number(options.PaymentConfirmationTimeout) || 65) * 1000 + GRACE_MS,
      });
    });
  }

  /** Puts `kept` ({id, token, tiyn, expires, giveUp}) on screen as the sale and follows its
   * status; a new sale clears the old one. */
  function showSale(kept) {
    stopSale();
    remember(sessionStorage, saleSlot(organization.bin), JSON.stringify(kept));
    sale = { ...kept, status: "QrTokenCreated", transactionId: "", paidAmount: "", gaveUp: false, polling: false };
    $("qr").src = "/qr/image.png?token=" + encodeURIComponent(sale.token);
    $("qr-token").textContent = sale.token;
    $("qr-payment-id").textContent = sale.id;
    $("sale").hidden = false;
    const current = sale;
    current.timer = setInterval(() => pollSale(current), POLL_MS);
    paintSale();
  }

  /** The sale this tab showed before a reload, asked again: its status may have moved since. */
  function restoreSale() {
    let kept = null;
    try {
      kept = JSON.parse(read(sessionStorage, saleSlot(organization.bin)) || "null");
    } catch {
      kept = null;
    }
    if (!kept || typeof kept.id !== "string" || typeof kept.token !== "string" ||
        !/^[0-9]+$/.test(String(kept.tiyn)) || !Number.isFinite(kept.expires) ||
        !Number.isFinite(kept.giveUp)) {
      return;
    }
    // Asked at least a few times, even past its deadline: the last answer is what it came to.
    showSale({ ...kept, giveUp: Math.max(kept.giveUp, now() + 5 * POLL_MS) });
    pollSale(sale);
  }

  async function pollSale(current) {
    if (current !== sale || current.polling) return;
    if (now() > current.giveUp) {
      clearInterval(current.timer);
      current.gaveUp = true;
      paintSale();
      return;
    }
    current.polling = true;
    const answer = await api("GET", "/r1/v02/payment/status/" + encodeURIComponent(current.id));
    current.polling = false;
    if (current !== sale) return;
    if (answer.StatusCode === 0 && answer.Data && answer.Data.Status) {
      current.status = answer.Data.Status;
      if (answer.Data.TransactionId) current.transactionId = String(answer.Data.TransactionId);
      if (answer.Data.Amount) current.paidAmount = String(answer.Data.Amount);
      if (current.status === "Processed" || current.status === "Error") {
        clearInterval(current.timer);
      }
    }
    // A failed poll is asked again at the next tick.
    paintSale();
  }

  function statusText(status) {
    const key = "status." + status;
    return key in TEXTS.ru ? tr(key) : tr("status.unknown", { status });
  }

  function countdownText(expires) {
    const left = Math.ceil((expires - now()) / 1000);
    if (left <= 0) return tr("countdown.expired");
    const minutes = Math.floor(left / 60);
    return minutes + ":" + String(left % 60).padStart(2, "0");
  }

  function paintSale() {
    if (!sale) return;
    const status = $("status");
    status.dataset.status = sale.status;
    let text = statusText(sale.status);
    if (sale.status === "Processed") {
      text = tr("status.paid", { amount: shownAmount(sale.paidAmount || wireAmount(sale.tiyn)) });
    }
    if (sale.gaveUp) text += " " + tr("status.gave_up");
    if (status.textContent !== text) status.textContent = text;
    $("sale-amount").textContent = humanAmount(sale.tiyn);
    $("transaction-id").textContent = sale.transactionId || "—";
    const waiting = sale.status === "QrTokenCreated";
    $("countdown").textContent = waiting ? countdownText(sale.expires) : tr("countdown.done");
    // A QR that can no longer be paid (expired, paid, failed) is dimmed.
    $("sale").classList.toggle("expired", sale.status !== "Wait" && (!waiting || now() >= sale.expires));
  }

  // ---- a refund with the customer (r2) ---------------------------------------------------------

  function stopReturn() {
    if (ret) clearInterval(ret.timer);
    ret = null;
    $("return").hidden = true;
    $("return").classList.remove("expired");
    $("purchases").replaceChildren();
    $("purchases-box").hidden = true;
    $("refund-form").hidden = true;
    unask("refund");
  }

  async function createReturn() {
    const error = $("return-error");
    unsay(error, "");
    unsay($("refund-result"), "");
    delete $("refund-result").dataset.statusCode;
    if (!device) {
      say(error, "device.needed");
      return;
    }
    await busy($("return-create"), async () => {
      const answer = await api("POST", "/r2/v01/return/create", { DeviceToken: device.token });
      if (answer.StatusCode !== 0) {
        if (deviceGone(answer)) say(error, "device.forgotten");
        else showFailure(error, answer);
        return;
      }
      stopReturn();
      const data = answer.Data;
      const expires = Date.parse(data.ExpireDate);
      ret = {
        id: String(data.QrReturnId),
        expires,
        giveUp: expires + GRACE_MS,
        status: "QrTokenCreated",
        gaveUp: false,
        polling: false,
        chosen: null,
      };
      $("return-qr").src = "/qr/image.png?token=" + encodeURIComponent(data.QrToken);
      $("return-token").textContent = data.QrToken;
      $("return").hidden = false;
      ret.timer = setInterval(() => pollReturn(ret), POLL_MS);
      paintReturn();
    });
  }

  async function pollReturn(current) {
    if (current !== ret || current.polling) return;
    if (now() > current.giveUp) {
      clearInterval(current.timer);
      current.gaveUp = true;
      paintReturn();
      return;
    }
    current.polling = true;
    const answer = await api("GET", "/r2/v01/return/status/" + encodeURIComponent(current.id));
    current.polling = false;
    if (current !== ret) return;
    if (answer.StatusCode === 0 && answer.Data && answer.Data.Status) {
      current.status = answer.Data.Status;
      if (current.status === "CustomerIdentityObtained" || current.status === "Error") {
        clearInterval(current.timer);
      }
      if (current.status === "CustomerIdentityObtained") await listPurchases(current);
    }
    paintReturn();
  }

  function paintReturn() {
    if (!ret) return;
    const status = $("return-status");
    status.dataset.status = ret.status;
    // A return QR's `Error` is one no customer scanned in time (or one used up), not a payment.
    let text = ret.used
      ? tr("status.return_used")
      : ret.status === "Error" ? tr("status.return_error") : statusText(ret.status);
    if (ret.gaveUp) text += " " + tr("status.gave_up");
    if (status.textContent !== text) status.textContent = text;
    const waiting = ret.status === "QrTokenCreated";
    $("return-countdown").textContent = waiting ? countdownText(ret.expires) : tr("countdown.done");
    $("return").classList.toggle("expired", ret.used || !waiting || now() >= ret.expires);
    for (const button of document.querySelectorAll("#purchases button.choose")) {
      button.textContent = tr("return.choose");
    }
  }

  async function listPurchases(current) {
    const answer = await api("POST", "/r2/v01/return/operations", {
      DeviceToken: device.token,
      QrReturnId: current.id,
    });
    if (current !== ret) return;
    const list = $("purchases");
    list.replaceChildren();
    $("purchases-box").hidden = false;
    if (answer.StatusCode !== 0) {
      showFailure($("return-error"), answer);
      return;
    }
    const purchases = Array.isArray(answer.Data) ? answer.Data : [];
    if (purchases.length === 0) {
      const item = document.createElement("li");
      say(item, "return.no_purchases");
      list.append(item);
      return;
    }
    for (const purchase of purchases) {
      const item = document.createElement("li");
      item.dataset.paymentId = String(purchase.QrPaymentId);
      const what = document.createElement("span");
      what.textContent = "№ " + purchase.QrPaymentId + " · " + shownAmount(purchase.Amount) + " · " +
        shownDate(purchase.TransactionDate);
      const choose = document.createElement("button");
      choose.type = "button";
      choose.className = "choose";
      choose.textContent = tr("return.choose");
      choose.addEventListener("click", () => choosePurchase(current, String(purchase.QrPaymentId), item));
      item.append(what, choose);
      list.append(item);
    }
  }

  /** A date of the PS's answer (`2026-12-06T04:43:10+05:00`, the operator's time zone) as
   * receipts write it, `06.12.2026 04:43`: the wall time the PS sent, whatever the browser's
   * own time zone. */
  function shownDate(sent) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(String(sent || ""));
    if (!m) return String(sent || "");
    return `${m[3]}.${m[2]}.${m[1]} ${m[4]}:${m[5]}`;
  }

  async function choosePurchase(current, paymentId, item) {
    for (const other of document.querySelectorAll("#purchases li")) other.removeAttribute("aria-current");
    item.setAttribute("aria-current", "true");
    const answer = await api(
      "GET",
      "/r2/v01/payment/details?QrPaymentId=" + encodeURIComponent(paymentId) +
        "&DeviceToken=" + encodeURIComponent(device.token),
    );
    if (current !== ret) return;
    if (answer.StatusCode !== 0) {
      showFailure($("return-error"), answer);
      return;
    }
    const data = answer.Data;
    current.chosen = paymentId;
    // What may go back (integer tiyn as a decimal string, "0" when nothing), to refuse more
    // before asking: the PS would refuse it after "yes".
    const left = parseTenge(data.AvailableReturnAmount ?? "");
    current.available = left.tiyn ?? (left.error === "amount.zero" ? "0" : null);
    unask("refund");
    say($("details"), "return.details", {
      id: paymentId,
      total: shownAmount(data.TotalAmount),
      available: shownAmount(data.AvailableReturnAmount),
    });
    $("refund-amount").value = typedAmount(data.AvailableReturnAmount);
    $("refund-form").hidden = false;
    $("refund-amount").focus();
  }

  // ---- placing a refund: typed, confirmed, sent ------------------------------------------------

  /** Asks the cashier to confirm a refund of `tiyn` of purchase `id` (`prefix`: `refund`, the
   * customer's; `plain`, without the customer). Nothing is sent until "yes". The question takes
   * the focus (a screen reader reads it), not "yes": a second Enter, or a key held down, must
   * not answer it. */
  function ask(prefix, tiyn, id) {
    say($(prefix + "-question"), "confirm.refund", { amount: humanAmount(tiyn), id });
    $(prefix + "-confirm").hidden = false;
    $(prefix + "-question").focus();
  }

  function unask(prefix) {
    $(prefix + "-confirm").hidden = true;
    if (prefix === "refund") pendingReturn = null;
    else pendingPlain = null;
  }

  /** A refund with the customer, typed: checked, then asked to confirm. */
  function refund() {
    const result = $("refund-result");
    unask("refund");
    if (!ret || !ret.chosen) {
      showProblem(result, "return.need_customer");
      return;
    }
    const amount = parseTenge($("refund-amount").value);
    if (amount.error) {
      showProblem(result, amount.error);
      return;
    }
    if (typeof ret.available === "string" && BigInt(amount.tiyn) > BigInt(ret.available)) {
      if (ret.available !== "0") {
        showProblem(result, "refund.at_most", { available: humanAmount(ret.available) });
      } else {
        showProblem(result, "refund.nothing_left");
      }
      return;
    }
    unsay(result, "");
    delete result.dataset.statusCode;
    pendingReturn = { tiyn: amount.tiyn, paymentId: ret.chosen, ret };
    ask("refund", amount.tiyn, ret.chosen);
  }

  async function placeReturn() {
    const pending = pendingReturn;
    if (!pending || pending.ret !== ret || pending.paymentId !== ret.chosen) {
      unask("refund");
      return;
    }
    const result = $("refund-result");
    const current = pending.ret;
    await busy([$("refund-yes"), $("refund")], async () => {
      sending(result);
      const answer = await api("POST", "/r2/v01/payment/return", {
        DeviceToken: device.token,
        QrPaymentId: pending.paymentId,
        QrReturnId: current.id,
        Amount: wireAmount(pending.tiyn),
      });
      unask("refund");
      showResult(result, answer, { amount: humanAmount(pending.tiyn), payment: pending.paymentId });
      // A return QR serves one refund: once placed, the form and the customer's purchases go,
      // so that nothing is left to press (a new return QR is needed for another).
      if (answer.StatusCode === 0 && current === ret) {
        current.chosen = null;
        current.used = true;
        $("refund-form").hidden = true;
        $("purchases-box").hidden = true;
        unsay($("details"), "");
        paintReturn();
      }
    });
  }

  /** While a refund waits for the customer's bank (up to `refunds.pos_wait_ms`): the last
   * answer is cleared, so that it cannot be read as this one's. */
  function sending(el) {
    delete el.dataset.statusCode;
    el.classList.remove("error");
    say(el, "refund.sending");
  }

  /** A refund the page itself refuses before asking the PS (no amount, no purchase chosen). */
  function showProblem(el, key, vars) {
    delete el.dataset.statusCode;
    el.classList.add("error");
    say(el, key, vars);
  }

  /** The answer of a refund: `data-status-code` is its StatusCode, the text what it means for the
   * cashier; `placed` ({amount, payment}) names what was asked. */
  function showResult(el, answer, placed) {
    if (answer.StatusCode === null || answer.StatusCode === undefined) {
      delete el.dataset.statusCode;
      el.classList.add("error");
      unsay(el, answer.Message);
      return;
    }
    el.classList.remove("error");
    el.dataset.statusCode = String(answer.StatusCode);
    if (answer.StatusCode === 0) {
      say(el, "return.done", { ...placed, id: answer.Data?.ReturnOperationId ?? "—" });
      return;
    }
    const refusal = refundRefusal(answer);
    if (refusal) say(el, refusal.key, refusal.vars);
    else showFailure(el, answer);
  }

  /** A refused refund in the cashier's words, where the API's message is written for programs:
   * the amount left to return (`-99000005` names it as `AvailableReturnAmount 1500.50`), and a
   * refusal of the customer's bank (`-99000006`, whose message ends with the MPP's answer). */
  function refundRefusal(answer) {
    const message = String(answer.Message || "");
    if (answer.StatusCode === -99000005) {
      const left = /AvailableReturnAmount\s+([0-9]+(?:\.[0-9]{1,2})?)/.exec(message);
      if (!left) return null;
      const tiyn = parseTenge(left[1]).tiyn;
      return tiyn
        ? { key: "refund.at_most", vars: { available: humanAmount(tiyn) } }
        : { key: "refund.nothing_left" };
    }
    if (answer.StatusCode === -99000006) {
      const code = /:\s*([A-Z_]+|—)\s*$/.exec(message);
      return { key: "refund.mpp_refused", vars: { code: code ? code[1] : "—" } };
    }
    return null;
  }

  // ---- a refund without the customer (r3) ------------------------------------------------------

  /** A refund without the customer, typed: checked, then asked to confirm. */
  function plainRefund() {
    const result = $("plain-result");
    unask("plain");
    const paymentId = $("plain-payment-id").value.trim();
    if (!/^[0-9]{1,19}$/.test(paymentId)) {
      showProblem(result, "plain.bad_id");
      return;
    }
    const amount = parseTenge($("plain-amount").value);
    if (amount.error) {
      showProblem(result, amount.error);
      return;
    }
    if (!device) {
      showProblem(result, "device.needed");
      return;
    }
    unsay(result, "");
    delete result.dataset.statusCode;
    pendingPlain = { tiyn: amount.tiyn, paymentId };
    ask("plain", amount.tiyn, paymentId);
  }

  async function placePlain() {
    const pending = pendingPlain;
    if (!pending || !device) {
      unask("plain");
      return;
    }
    const result = $("plain-result");
    // A refund whose answer never came (no network, a fault, retry later) is asked again under
    // the same X-Request-ID, so that the PS answers the first one instead of placing a second.
    const what = pending.paymentId + "|" + pending.tiyn;
    if (!plainAttempt || plainAttempt.what !== what) plainAttempt = { what, id: newRequestId() };
    const attempt = plainAttempt;
    await busy([$("plain-yes"), $("plain-refund")], async () => {
      sending(result);
      const answer = await api("POST", "/r3/v01/payment/return", {
        DeviceToken: device.token,
        OrganizationBin: organization.bin,
        QrPaymentId: pending.paymentId,
        Amount: wireAmount(pending.tiyn),
      }, attempt.id);
      if (typeof answer.StatusCode === "number" && answer.StatusCode !== -999) plainAttempt = null;
      unask("plain");
      deviceGone(answer);
      showResult(result, answer, { amount: humanAmount(pending.tiyn), payment: pending.paymentId });
      // Placed: the form is emptied, so that a second press asks for the amount again instead
      // of placing the same refund twice.
      if (answer.StatusCode === 0) {
        $("plain-payment-id").value = "";
        $("plain-amount").value = "";
      }
    });
  }

  // ---- the page ---------------------------------------------------------------------------------

  /** Runs `work` with `buttons` (one or a list) disabled, so that one click is one request. */
  async function busy(buttons, work) {
    const all = Array.isArray(buttons) ? buttons : [buttons];
    // A disabled button loses the focus to the page: a keyboard user would start again from
    // its top. Given back once the work is done, unless the work led the focus elsewhere.
    const had = document.activeElement;
    for (const button of all) button.disabled = true;
    try {
      await work();
    } finally {
      for (const button of all) button.disabled = false;
      const lost = !document.activeElement || document.activeElement === document.body;
      if (lost && all.includes(had) && had.getClientRects().length > 0) had.focus();
    }
  }

  function repaint() {
    if (organization) {
      $("organization").textContent = tr("sign_in.as", { name: organization.name, bin: organization.bin });
    }
    const shown = $("device");
    if (device) {
      shown.dataset.deviceToken = device.token;
      shown.textContent = tr("device.registered", { id: device.id, point: device.tradePointName });
    } else {
      delete shown.dataset.deviceToken;
      shown.textContent = tr("device.none");
    }
    paintSale();
    paintReturn();
  }

  function submit(formId, action) {
    $(formId).addEventListener("submit", (event) => {
      event.preventDefault();
      action();
    });
  }

  function start() {
    paintTexts();
    for (const code of LOCALES) $("locale-" + code).addEventListener("click", () => setLocale(code));
    submit("sign-in-form", () => signIn($("api-key").value.trim(), false));
    $("sign-out").addEventListener("click", signOut);
    $("register").addEventListener("click", register);
    submit("sale-form", createQr);
    $("return-create").addEventListener("click", createReturn);
    submit("refund-form", refund);
    submit("plain-form", plainRefund);
    $("refund-yes").addEventListener("click", placeReturn);
    $("plain-yes").addEventListener("click", placePlain);
    $("refund-no").addEventListener("click", () => {
      unask("refund");
      $("refund-amount").focus();
    });
    $("plain-no").addEventListener("click", () => {
      unask("plain");
      $("plain-amount").focus();
    });
    // A changed amount or purchase is a new refund: the question asked about the old one goes.
    $("refund-amount").addEventListener("input", () => unask("refund"));
    for (const id of ["plain-payment-id", "plain-amount"]) {
      $(id).addEventListener("input", () => unask("plain"));
    }
    // The countdowns tick between polls too.
    setInterval(() => {
      paintSale();
      paintReturn();
    }, 500);
    const kept = read(sessionStorage, KEY_SLOT);
    if (kept) signIn(kept, true);
  }

  start();
})();
