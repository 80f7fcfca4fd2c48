// Forms generated from a JSON schema (pydantic's): a field per property, with labels,
// a choice of variant for a union, and a JSON text box for what has no simpler field.

import { h } from "./dom.js";

let counter = 0;
const nextId = (prefix) => `${prefix}-${++counter}`;

export class FormError extends Error {}

function resolve(schema, root) {
  let current = schema || {};
  for (let depth = 0; current.$ref && depth < 20; depth++) {
    const name = current.$ref.replace(/^#\/(\$defs|definitions)\//, "");
    const target = (root.$defs || root.definitions || {})[name] || {};
    const { $ref, ...rest } = current;
    current = { ...target, ...rest };
  }
  return current;
}

function variants(schema) {
  const options = schema.anyOf || schema.oneOf;
  if (!options) return null;
  return options;
}

function typeOf(schema) {
  const type = schema.type;
  if (Array.isArray(type)) return type.find((t) => t !== "null") || "null";
  return type;
}

function titleOf(schema, root, fallback) {
  const resolved = resolve(schema, root);
  if (resolved.title) return resolved.title;
  if (schema.$ref) return schema.$ref.split("/").pop();
  return typeOf(resolved) || fallback;
}

/**
 * A field for `schema`: {element, read()} where read() returns the value (undefined for
 * an optional field left empty) or throws FormError.
 */
export function field(schema, root, { label, required = true, initial, hint } = {}) {
  const resolved = resolve(schema, root);
  const id = nextId("f");
  const description = hint || resolved.description;
  const hintId = description ? `${id}-hint` : null;
  const hintEl = description ? h("p", { class: "hint", id: hintId }, description) : null;
  const start = initial !== undefined ? initial : resolved.default;
  const options = variants(resolved);
  if (options) {
    const concrete = options.filter((o) => resolve(o, root).type !== "null");
    const nullable = concrete.length < options.length;
    if (concrete.length === 1) {
      return field(concrete[0], root, { label, required: required && !nullable, initial: start, hint: description });
    }
    const select = h("select", { id, "aria-describedby": hintId });
    concrete.forEach((o, i) => select.append(h("option", { value: String(i) }, titleOf(o, root, `option ${i + 1}`))));
    const holder = h("div", { class: "variant" });
    let current = null;
    const show = () => {
      const chosen = concrete[Number(select.value)];
      current = field(chosen, root, { label: `${label} (${titleOf(chosen, root, "value")})`, required: true });
      holder.replaceChildren(current.element);
    };
    select.addEventListener("change", show);
    show();
    const element = h(
      "div",
      { class: "field" },
      h("label", { for: id }, `${label}: as`),
      select,
      hintEl,
      holder,
    );
    return { element, read: () => current.read() };
  }
  if (resolved.enum) {
    const select = h("select", { id, "aria-describedby": hintId });
    if (!required) select.append(h("option", { value: "" }, "—"));
    resolved.enum.forEach((v, i) => select.append(h("option", { value: String(i), selected: v === start }, String(v))));
    return {
      element: h("div", { class: "field" }, h("label", { for: id }, label), select, hintEl),
      read: () => (select.value === "" ? undefined : resolved.enum[Number(select.value)]),
    };
  }
  const type = typeOf(resolved);
  if (type === "object" && resolved.properties) {
    const needed = new Set(resolved.required || []);
    const children = Object.entries(resolved.properties).map(([name, sub]) => [
      name,
      field(sub, root, {
        label: resolve(sub, root).title || sub.title || name,
        required: needed.has(name),
        initial: start && typeof start === "object" ? start[name] : undefined,
      }),
    ]);
    const element = h(
      "fieldset",
      { class: "object" },
      h("legend", null, label),
      hintEl,
      children.map(([, f]) => f.element),
    );
    return {
      element,
      read: () => {
        const out = {};
        for (const [name, f] of children) {
          const value = f.read();
          if (value !== undefined) out[name] = value;
        }
        return out;
      },
    };
  }
  if (type === "boolean") {
    const input = h("input", { id, type: "checkbox", checked: start === true, "aria-describedby": hintId });
    return {
      element: h("div", { class: "field check" }, input, h("label", { for: id }, label), hintEl),
      read: () => input.checked,
    };
  }
  if (type === "string" || type === "integer" || type === "number") {
    const numeric = type !== "string";
    const input = h("input", {
      id,
      type: numeric ? "number" : "text",
      step: type === "integer" ? "1" : numeric ? "any" : null,
      value: start !== undefined && start !== null ? String(start) : null,
      required: required && start === undefined,
      "aria-describedby": hintId,
      autocomplete: "off",
      spellcheck: "false",
    });
    const read = () => {
      const raw = input.value;
      input.removeAttribute("aria-invalid");
      if (raw === "") {
        if (type === "string" && required) return "";
        if (!required) return undefined;
        input.setAttribute("aria-invalid", "true");
        throw new FormError(`${label}: a value is required`);
      }
      if (!numeric) return raw;
      const value = Number(raw);
      if (!Number.isFinite(value) || (type === "integer" && !Number.isInteger(value))) {
        input.setAttribute("aria-invalid", "true");
        throw new FormError(`${label}: ${raw} is no ${type}`);
      }
      return value;
    };
    const typeHint = description ? null : h("p", { class: "hint", id: `${id}-type` }, type === "string" ? "text" : type);
    if (typeHint) input.setAttribute("aria-describedby", `${id}-type`);
    return { element: h("div", { class: "field" }, h("label", { for: id }, label), input, hintEl || typeHint), read };
  }
  // anything else (arrays, maps, unknown schemas): JSON text
  const area = h(
    "textarea",
    { id, rows: 3, spellcheck: "false", "aria-describedby": `${id}-json` },
    start !== undefined ? JSON.stringify(start) : "",
  );
  const what = type ? `JSON ${type}` : "JSON";
  return {
    element: h(
      "div",
      { class: "field" },
      h("label", { for: id }, label),
      area,
      h("p", { class: "hint", id: `${id}-json` }, `${what}${description ? ` — ${description}` : ""}`),
    ),
    read: () => {
      area.removeAttribute("aria-invalid");
      if (area.value.trim() === "") {
        if (!required) return undefined;
        area.setAttribute("aria-invalid", "true");
        throw new FormError(`${label}: a value is required`);
      }
      try {
        return JSON.parse(area.value);
      } catch (error) {
        area.setAttribute("aria-invalid", "true");
        throw new FormError(`${label}: not JSON (${error.message})`);
      }
    },
  };
}

/** A form for a value of `schema` (a JSON text box when it is null). */
export function schemaForm(schema, { label = "Input", initial } = {}) {
  const root = schema || {};
  return field(root, root, { label, initial });
}
