package sqlstore

// jsonDict is the preset dictionary of Compact: text that the small JSON
// values Paybound stores often contain (the keys and usual values of a
// payment, its risk assessment and the assessment's input, a checkout
// session, a refund), so that a value of a few hundred bytes refers back
// into it instead of spelling its keys out, which a compressor without a
// dictionary cannot do in a value that short. Where a text is here twice,
// the later one is used, at a nearer distance (a shorter code), so the
// most frequent text is at the end.
//
// It never changes: values stored with it are read with it for as long as
// they are kept (TestJSONDictUnchanged pins it). Another dictionary would
// need a mark of its own beside dictMark.
const jsonDict = `{"object":"checkout_session","status":"ready_for_payment","line_items":[{"id":"li_","item":{"id":"","quantity":1},"base_amount":0,"discount":0,"subtotal":0,"tax":0,"total":0}],` +
	`"fulfillment_options":[{"type":"shipping","id":"","title":"","subtitle":"","carrier":"","earliest_delivery_time":"","latest_delivery_time":"","subtotal":0,"tax":0,"total":0}],` +
	`"fulfillment_address":{"name":"","line_one":"","line_two":"","city":"","state":"","country":"US","postal_code":""},"buyer":{"first_name":"","last_name":"","email":"","phone_number":""},` +
	`"totals":[{"type":"items_base_amount","display_text":"Item(s) total","amount":0},{"type":"subtotal","display_text":"Subtotal","amount":0},{"type":"tax","display_text":"Tax","amount":0},{"type":"total","display_text":"Total","amount":0}],` +
	`"messages":[],"links":[],"payment_provider":{"provider":"paybound","supported_payment_methods":["card"]},"order":{"id":"","checkout_session_id":"","permalink_url":""}}` +
	`{"id":"re_","object":"refund","payment_id":"pay_","reason":"requested_by_customer","status":"succeeded"}` +
	`{"merchant_name":"","category":"general","now":"2026-12-05T00:00:00Z","merchant_history":{"count":0,"median":0},"category_history":{"count":0,"median":0},"mandate_history":{"count":0,"median":0},` +
	`"paid_merchant_before":true,"available":0,"agent_velocity":{"minute":{"count":0,"sum":0},"hour":{"count":0,"sum":0},"day":{"count":0,"sum":0}},` +
	`"mandate_velocity":{"minute":{"count":0,"sum":0},"hour":{"count":0,"sum":0},"day":{"count":0,"sum":0}},` +
	`"payee_velocity":{"minute":{"count":0,"sum":0},"hour":{"count":0,"sum":0},"day":{"count":0,"sum":0}},"salt":"` +
	`"}{"decision":"review","score":0,"signals":[{"name":"velocity_","points":0,"reason":""},{"name":"amount_vs_merchant_history"},{"name":"new_payee_large_amount"},` +
	`{"name":"drains_wallet"},{"name":"decline_burst"},{"name":"untrusted_payee"}]}` +
	`{"decision":"allow","score":10,"signals":[{"name":"new_payee","points":10,"reason":"first payment to this payee"},{"name":"new_merchant","points":10,"reason":"the merchant account is 0h old"}]}` +
	`{"id":"pay_01","object":"payment","status":"authorized","amount":0,"amount_captured":0,"amount_refunded":0,"fee_amount":0,"currency":"USD","merchant_id":"mch_01",` +
	`"payer_id":"usr_01","agent_id":"agt_01","mandate_id":"mdt_01","description":"","capture_method":"manual","authorization_expires_at":"2026-12-05T00:00:00Z","metadata":{},` +
	`"created_at":"2026-12-05T00:00:00Z","assurance":"signed","risk":{"decision":"allow","signals":[{"name":"new_merchant"}]}}` +
	`{"id":"pay_01","object":"payment","status":"captured","amount":0,"amount_captured":0,"amount_refunded":0,"fee_amount":0,"currency":"USD","merchant_id":"mch_01",` +
	`"payer_id":"usr_01","agent_id":"","mandate_id":"","description":"","capture_method":"automatic","authorization_expires_at":"2026-12-05T00:00:00Z","metadata":{},` +
	`"created_at":"2026-12-05T00:00:00Z","assurance":"user","risk":{"decision":"allow","signals":[{"name":"new_payee"},{"name":"new_merchant"}]}}`
