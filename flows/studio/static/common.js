// What both pages share: JSON requests whose failures come back as one message.
"use strict";

async function api(path, body, contentType) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: {"Content-Type": contentType || "application/json"},
    body: contentType ? body : JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const kind = response.headers.get("content-type") || "";
  const data = kind.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const error = new Error(typeof data === "object" && data.detail ? data.detail : String(data));
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) node.append(child);
  return node;
}

function setStatus(text) { document.getElementById("status").textContent = text; }

function fmt(value, digits) {
  if (value === null || value === undefined) return "–";
  return Number(value).toFixed(digits === undefined ? 4 : digits);
}
