// Review keys for Streamlit (st.components.v2): the keys pressed on the page, outside text fields, as a
// list of presses {seq, key, item} in the component's state. `item` is the item on screen when the key
// went down, so a key pressed twice before the page caught up cannot act on an image nobody saw.
// Python acknowledges what it handled (data.acknowledged) and the list drops those, so no press is
// lost or handled twice when presses come faster than reruns.
//
// One document listener for the module: Streamlit 1.67 calls this function again on each rerun and
// runs the returned cleanup only on unmount, so each call just swaps in its data.
const nonce = Math.random().toString(36).slice(2);
let sequence = 0;
let pending = [];
let current = null;

const TYPING = "input, textarea, select, [contenteditable], [role=slider], [role=listbox], [role=combobox], [role=option]";

function onKeyDown(event) {
  if (current === null || event.defaultPrevented) return;
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat || event.isComposing) return;
  const target = event.composedPath()[0];
  if (target instanceof Element && target.closest(TYPING)) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (!current.data.keys.includes(key)) return;
  event.preventDefault();
  sequence += 1;
  pending.push({ seq: sequence, key, item: current.data.item });
  current.setStateValue("presses", { nonce, events: pending.slice() });
}

export default function (component) {
  const done = component.data.acknowledged || {};
  if (done.nonce === nonce) pending = pending.filter((press) => press.seq > done.seq);
  if (current === null) document.addEventListener("keydown", onKeyDown);
  current = component;
  return () => {
    if (current !== component) return;
    document.removeEventListener("keydown", onKeyDown);
    current = null;
  };
}
