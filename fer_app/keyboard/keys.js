// Review keys for Streamlit (st.components.v2): the keys pressed on the page, outside text fields, as a
// list of presses {seq, key, item} in the component's state. `item` is the tag of the item on screen when
// the key went down, read from the page (the container whose key starts with data.itemPrefix), so a key
// pressed twice before the page caught up cannot act on an image nobody saw.
// Python acknowledges what it handled (data.acknowledged) and the list drops those, so no press is
// lost or handled twice when presses come faster than reruns.
//
// One document listener for the module: Streamlit 1.67 calls this function again on each rerun and
// runs the returned cleanup only on unmount, so each call just swaps in its data.
const nonce = Math.random().toString(36).slice(2);
let sequence = 0;
let pending = [];
let current = null;

// Where a key belongs to the field: text fields, lists, sliders, radios. A checkbox or toggle (letters do
// nothing there) keeps the keys, so a reviewer who just switched keyboard review on can start at once.
const TYPING = "input:not([type=checkbox]):not([type=button]):not([type=submit]), textarea, select, " +
  "[contenteditable]:not([contenteditable=false]), [role=slider], [role=listbox], [role=combobox], [role=option]";

function shownItem(prefix) {
  const marker = "st-key-" + prefix;
  const shown = document.querySelector(`[class*="${marker}"]`);
  const name = shown ? [...shown.classList].find((name) => name.startsWith(marker)) : undefined;
  return name ? name.slice(marker.length) : "";
}

function onKeyDown(event) {
  if (current === null) return;
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat || event.isComposing) return;
  const target = event.composedPath()[0];
  if (target instanceof Element && target.closest(TYPING)) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (!current.data.keys.includes(key)) return;
  event.preventDefault();
  sequence += 1;
  pending.push({ seq: sequence, key, item: shownItem(current.data.itemPrefix) });
  current.setStateValue("presses", { nonce, events: pending.slice() });
}

let revision = -1;

export default function (component) {
  // An older render resolving after a newer one (each call is asynchronous) must not replace it.
  if (component.data.revision < revision) return () => {};
  revision = component.data.revision;
  const done = component.data.acknowledged || {};
  if (done.nonce === nonce) pending = pending.filter((press) => press.seq > done.seq);
  // Capture phase: a focused switch (react-aria) stops its keys from bubbling to the document.
  if (current === null) {
    document.addEventListener("keydown", onKeyDown, true);
    document.body.dataset.reviewKeys = "listening";  // for tests: keys pressed from now on are taken
  }
  current = component;
  return () => {
    if (current !== component) return;
    document.removeEventListener("keydown", onKeyDown, true);
    delete document.body.dataset.reviewKeys;
    current = null;
  };
}
