// The feed reader: asks tessera's front-end token proxy (POST /proxy/request) to fetch the feed.
// With no grant yet the proxy answers an oauthApprovalUrl; the page links to it, and the approval
// page returns here. The page never sees a token.
"use strict";

const page = document.body.dataset;

async function proxied(url) {
  const res = await fetch(`${page.accounts}/proxy/request?app=${encodeURIComponent(page.app)}`, {
    method: "POST",
    credentials: "include",
    headers: { "Content-Type": "application/json", "X-Tessera-Proxy": "1" },
    body: JSON.stringify({ url, method: "GET", returnTo: location.href }),
  });
  return { ok: res.ok, answer: await res.json() };
}

async function load() {
  const status = document.getElementById("status");
  const approve = document.getElementById("approve");
  const feed = document.getElementById("feed");
  status.textContent = "Loading…";
  try {
    const { ok, answer } = await proxied(page.feed);
    if (answer.oauthApprovalUrl) {
      approve.href = answer.oauthApprovalUrl;
      approve.hidden = false;
      status.textContent = "This page needs your permission to read your feed.";
    } else if (!ok) {
      status.textContent = `The proxy refused: ${answer.error} (${answer.error_description})`;
    } else {
      approve.hidden = true;
      status.textContent = `The feed answered ${answer.status}.`;
      feed.textContent = answer.body ?? "";
    }
  } catch (err) {
    status.textContent = `The proxy could not be reached: ${err}`;
  }
}

document.getElementById("reload").addEventListener("click", load);
load();
