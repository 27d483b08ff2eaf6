// node-gcm (npm) as an independent GCM sender against a tessera server.
// argv[2]: node-gcm's directory; argv[3]: a JSON object with base, key, good, bad, down_base,
// down_key, down_good. Prints a JSON object of what the library answered.
const gcm = require(process.argv[2]);
const cfg = JSON.parse(process.argv[3]);

function send(base, key, recipient, data) {
  const sender = new gcm.Sender(key, { uri: base + "/gcm/send" });
  const message = new gcm.Message({ data });
  return new Promise((resolve) => {
    sender.send(message, recipient, { retries: 0 }, (err, body) => resolve({ err, body }));
  });
}

(async () => {
  const out = {};
  out.multicast = await send(cfg.base, cfg.key, { registrationTokens: [cfg.good, cfg.bad] }, { text: "multicast" });
  out.single = await send(cfg.base, cfg.key, cfg.good, { text: "single" });
  out.topic = await send(cfg.base, cfg.key, { to: "/topics/news" }, { text: "topic" });
  out.unauthorized = await send(cfg.base, "AIzaNotAKey", { registrationTokens: [cfg.good] }, { text: "x" });
  out.unavailable = await send(cfg.down_base, cfg.down_key, { registrationTokens: [cfg.down_good] }, { text: "down" });
  console.log(JSON.stringify(out));
})();
