"""The teaching demo's words, in English and in Chinese (the seed's own terms).

``mpay demo --lang zh`` speaks the seed's language: 移动支付中心 for the payment center,
预扣 for the hold, 诚信积分 for integrity points, the step names of the seed's text
(the original ``seed-protocol.zh.md``). Protocol identifiers (message types,
escrow states, check details produced by the code) stay as the code writes them, so a
student can find them in the source.

Every table has an entry for every language in :data:`LANGS`; ``tests/test_demo.py``
checks it.
"""

from __future__ import annotations

from mpay.protocol.messages import MessageType

LANGS = ("en", "zh")

#: a text per language
Words = dict[str, str]

# --- parties ---------------------------------------------------------------------------------

ROLE_NAMES: dict[str, Words] = {
    "customer": {"en": "customer", "zh": "顾客"},
    "merchant": {"en": "merchant", "zh": "商家"},
    "payment_center": {"en": "payment center", "zh": "移动支付中心"},
    "bank": {"en": "bank", "zh": "银行"},
    "authority": {"en": "authority", "zh": "权威认证机构"},
}

# --- the seed's steps ------------------------------------------------------------------------

#: the eleven steps of the seed's transaction (section 2 of the seed)
SEED_STEPS: dict[int, Words] = {
    1: {"en": "purchase", "zh": "购买信息"},
    2: {"en": "order contract", "zh": "订单合同"},
    3: {"en": "payment request", "zh": "请求支付"},
    4: {"en": "confirmation request", "zh": "请求确认合同"},
    5: {"en": "confirm (top up first if the balance is short)", "zh": "确认合同(话费不足时先充值)"},
    6: {"en": "hold (预扣) and ship request", "zh": "预扣货款,发货通知"},
    7: {"en": "ship", "zh": "发货"},
    8: {"en": "accept or reject the goods", "zh": "验收"},
    9: {"en": "settle: pay the merchant", "zh": "货款汇到商家账户"},
    10: {"en": "refund", "zh": "退款"},
    11: {"en": "rate and reward", "zh": "评价,累积诚信积分"},
}

#: who would send the step's main SMS to whom (roles), for steps a path does not take
SEED_STEP_ROLES: dict[int, tuple[str, str]] = {
    1: ("customer", "merchant"),
    2: ("merchant", "customer"),
    3: ("merchant", "payment_center"),
    4: ("payment_center", "customer"),
    5: ("customer", "payment_center"),
    6: ("payment_center", "merchant"),
    7: ("merchant", "payment_center"),
    8: ("customer", "payment_center"),
    9: ("payment_center", "merchant"),
    10: ("merchant", "payment_center"),
    11: ("customer", "payment_center"),
}

#: what each SMS does, in the seed's words
MESSAGE_NAMES: dict[str, Words] = {
    MessageType.SHOP_REGISTRATION: {
        "en": "register at the shop, paying by phone fee",
        "zh": "在商家网站注册,支付方式为手机话费",
    },
    MessageType.PHONE_CHECK: {"en": "the shop checks the phone by SMS", "zh": "商家通过短信确认手机主人身份"},
    MessageType.PHONE_CHECK_REPLY: {"en": "the handset answers the check", "zh": "手机回复确认"},
    MessageType.CUSTOMER_REGISTRATION: {
        "en": "real-name registration at the payment center",
        "zh": "在移动支付中心以实名手机信息注册",
    },
    MessageType.CARD_BINDING: {"en": "bind the phone to a bank card", "zh": "手机与银行卡帐号绑定"},
    MessageType.MERCHANT_REGISTRATION: {
        "en": "the merchant registers at the payment center",
        "zh": "商家在移动支付中心注册账号",
    },
    MessageType.REGISTRATION_ACK: {"en": "registration answered", "zh": "注册回复"},
    MessageType.PURCHASE_REQUEST: {"en": "purchase information", "zh": "购买信息"},
    MessageType.ORDER_CONTRACT: {"en": "order contract and contract number", "zh": "订单合同与交易合同号"},
    MessageType.PAYMENT_REQUEST: {"en": "payment request", "zh": "请求支付信息"},
    MessageType.CONFIRMATION_REQUEST: {
        "en": "confirmation request: contract and phone-fee balance",
        "zh": "请求确认合同信息:订货合同与现有话费",
    },
    MessageType.TOP_UP_INSTRUCTION: {"en": "top-up instruction to the bank", "zh": "转账短信(充值)"},
    MessageType.TOP_UP_NOTICE: {
        "en": "the bank moves the money to the payment center",
        "zh": "银行把钱转到移动支付中心的顾客账号",
    },
    MessageType.TOP_UP_RECEIPT: {"en": "the bank's receipt", "zh": "银行回执"},
    MessageType.CONFIRMATION: {"en": "confirm the contract", "zh": "确认合同信息"},
    MessageType.DECLINE: {"en": "decline the contract", "zh": "拒绝合同"},
    MessageType.PAYMENT_REFUSED: {"en": "payment refused: the transaction ends", "zh": "拒绝交易,购买过程终止"},
    MessageType.SHIP_REQUEST: {"en": "payment held (预扣): ship request", "zh": "已预扣货款:请求发货通知"},
    MessageType.SHIPMENT_NOTICE: {"en": "shipped: tell the customer", "zh": "发货,短信通知顾客收货"},
    MessageType.SHIPMENT_REPORT: {"en": "shipped: report to the payment center", "zh": "订单合同号,货已发"},
    MessageType.ACCEPTANCE: {"en": "transaction succeeded (goods accepted)", "zh": "交易成功短信"},
    MessageType.REJECTION: {"en": "transaction failed (goods returned)", "zh": "交易不成功短信"},
    MessageType.SETTLEMENT_NOTICE: {"en": "paid to the merchant; points awarded", "zh": "货款已汇到商家账户,给予积分"},
    MessageType.REFUND_AGREEMENT: {"en": "agree to refund", "zh": "同意退款短信"},
    MessageType.REFUND_NOTICE: {"en": "held payment returned to the customer", "zh": "预扣款退回顾客账户"},
    MessageType.DISPUTE_DECISION: {"en": "dispute decided", "zh": "争议裁决"},
    MessageType.RATING: {"en": "rate the other party", "zh": "对对方作出评价"},
    MessageType.POINTS_REDEMPTION: {"en": "points for discounted phone fee", "zh": "积分换优惠话费"},
}

# --- message fields (Chinese labels; English keeps the code's field names) ----------------

FIELD_NAMES_ZH: dict[str, str] = {
    "contract_no": "交易合同号",
    "contract": "订单合同",
    "merchant_id": "商家",
    "customer_no": "用户编号",
    "items": "商品",
    "shipping_method": "运送方式",
    "shipping_fee_fen": "运费",
    "total_fen": "总金额",
    "currency": "币种",
    "delivery_address": "交货地址",
    "customer_phone": "顾客手机号码",
    "balance_fen": "现有话费",
    "shortfall_fen": "话费不足差额",
    "confirm_window_s": "确认期限",
    "order_ref": "订单参考号",
    "purchased_unix_s": "购买时间",
    "payment_method": "支付方式",
    "phone": "手机号码",
    "name": "姓名",
    "id_number": "身份证号码",
    "landline": "固定电话号码",
    "address": "住址",
    "postcode": "邮政编码",
    "card_number": "银行卡号",
    "pin": "密码",
    "top_up_id": "转账编号",
    "command": "转账命令",
    "amount_fen": "金额",
    "status": "状态",
    "refusal_reason": "拒绝理由",
    "contract_digest": "合同摘要 (SHA-256)",
    "reason": "理由",
    "text": "说明",
    "held_fen": "预扣金额",
    "ship_window_s": "发货期限",
    "tracking_no": "运单号",
    "shipped_unix_s": "发货时间",
    "return_tracking_no": "退货运单号",
    "points_awarded": "奖励积分",
    "auto_accepted": "自动按交易成功处理",
    "returned_goods_received": "已收到退货",
    "agrees_to_refund": "同意退款",
    "decision": "裁决",
    "ratee_id": "被评价方",
    "stars": "星级",
    "comment": "评语",
    "redemption_id": "兑换编号",
    "points": "积分",
    "registration": "注册",
    "shop_name": "店名",
    "nonce": "随机数",
}

#: a few literal values worth translating
VALUES_ZH: dict[str, str] = {
    "surface": "平邮",
    "express": "快邮",
    "phone_fee": "手机话费",
    "accepted": "已接受",
    "refused": "已拒绝",
    "shipped": "货已发",
    "credited": "已入账",
    "top_up_phone_fee": "话费充值",
}

# --- the receiver's checks -----------------------------------------------------------------

CHECK_NAMES: dict[str, Words] = {
    "decrypted": {"en": "decryption (key unwrap, AES-GCM tag)", "zh": "解密(解出会话密钥,校验标签)"},
    "signature": {"en": "signature", "zh": "数字签名"},
    "chain": {"en": "certificate chain", "zh": "证书链(权威认证机构)"},
    "validity": {"en": "certificate validity", "zh": "证书有效期"},
    "revocation": {"en": "revocation", "zh": "证书吊销"},
    "headers": {"en": "signed headers", "zh": "签名报头"},
    "sender_number": {"en": "sender's phone number", "zh": "发送方手机号码"},
    "replay": {"en": "replay window", "zh": "防重放窗口"},
}

# --- the payment center's timers (windows) and the parties' own ------------------------------

WINDOW_LAPSES: dict[str, Words] = {
    "confirm": {
        "en": "the confirmation window ({window}) lapsed: the transaction is refused and ends here (step 4)",
        "zh": "确认期限({window})已过:拒绝交易,购买过程到此终止(第4步)",
    },
    "ship": {
        "en": "EXTENSION: the ship window ({window}) lapsed: automatic refund",
        "zh": "扩展:发货期限({window})已过:自动退款",
    },
    "accept": {
        "en": "the acceptance window ({window}) lapsed: treated as succeeded (step 8)",
        "zh": "验收期限({window})已过:自动按交易成功处理(第8步)",
    },
    "refund": {
        "en": "EXTENSION: the refund window ({window}) lapsed: the transaction is disputed",
        "zh": "扩展:退款期限({window})已过:进入争议",
    },
    "dispute": {
        "en": "EXTENSION: the dispute review ({window}) is over: the payment center decides",
        "zh": "扩展:争议审查({window})结束:移动支付中心裁决",
    },
}

PARTY_TIMERS: dict[str, Words] = {
    "decide": {"en": "{actor} has read the contract and decides", "zh": "{actor} 阅读合同后作出决定"},
    "inspect": {"en": "{actor} has inspected the goods", "zh": "{actor} 验收货物"},
    "ship": {"en": "{actor} packs the goods and ships", "zh": "{actor} 包装并发货"},
}

# --- ledger moves --------------------------------------------------------------------------

LEDGER_MOVES: dict[str, Words] = {
    "hold": {
        "en": "hold (预扣) {amount}: {customer}'s phone-fee wallet -> escrow (pending transfer)",
        "zh": "预扣 {amount}:{customer} 的话费账户 -> 托管(待定转账)",
    },
    "settle": {
        "en": "settle {amount}: escrow -> {merchant}'s wallet; {customer} earns {points} points",
        "zh": "结算 {amount}:托管 -> {merchant} 的账户;{customer} 获得 {points} 积分",
    },
    "refund": {
        "en": "refund {amount}: the hold is voided, {customer}'s wallet gets it back",
        "zh": "退款 {amount}:撤销预扣,退回 {customer} 的话费账户",
    },
    "top_up": {
        "en": "bank: {amount} from {customer}'s card -> the payment center's bank account",
        "zh": "银行:{amount} 从 {customer} 的银行卡转到移动支付中心的银行账户",
    },
    "credit_top_up": {
        "en": "top-up {amount} credited to {customer}'s phone-fee wallet",
        "zh": "充值 {amount} 记入 {customer} 的话费账户",
    },
    "redeem_points": {
        "en": "{customer} redeems {points} points for {amount} of phone fee",
        "zh": "{customer} 用 {points} 积分兑换 {amount} 优惠话费",
    },
}

#: a transaction's outcome (``summary.json``)
OUTCOMES: dict[str, Words] = {
    "settled": {"en": "settled", "zh": "交易成功,货款已汇给商家"},
    "refunded": {"en": "refunded", "zh": "已退款"},
    "declined": {"en": "declined", "zh": "交易被拒绝"},
    "disputed": {"en": "disputed", "zh": "争议中"},
    "open": {"en": "open", "zh": "未完成"},
}

# --- everything else the demo says ---------------------------------------------------------

TEXTS: dict[str, Words] = {
    "title": {"en": "Teaching demo: one purchase over SMS, step by step", "zh": "教学演示:一次手机短信购物,逐步讲解"},
    "scenario": {"en": "scenario {name} (seed {seed}, suite {suite})", "zh": "场景 {name}(种子 {seed},密码套件 {suite})"},
    "first_of_many": {
        "en": "this scenario has {count} orders; the demo walks through the first one only ({customer} buys from {merchant})",
        "zh": "本场景共有 {count} 笔订单;演示只讲解第一笔({customer} 向 {merchant} 购买)",
    },
    "part_init": {"en": "1. Initialization", "zh": "1. 初始化"},
    "part_txn": {"en": "2. The transaction", "zh": "2. 手机交易安全支付流程"},
    "init": {"en": "Init", "zh": "初始化"},
    "step": {"en": "Step", "zh": "第"},
    "step_suffix": {"en": "", "zh": "步"},
    "extension": {"en": "Extension", "zh": "扩展"},
    "init1": {
        "en": "Init 1 · certificates from the authority: every party gets a key pair and an X.509 certificate",
        "zh": "初始化 1 · 向权威认证机构申请证书:各方生成公钥私钥与数字证书",
    },
    "cert_line": {
        "en": "{party} ({role}, SIM {number}): {key}, certificate {der} bytes, valid {start} .. {end}",
        "zh": "{party}({role},手机卡 {number}):{key},证书 {der} 字节,有效期 {start} .. {end}",
    },
    "init5": {
        "en": "Init 5 · certificates checked with the authority: every SMS above was checked against the "
        "authority's certificate (the 'certificate chain' check); the institutions' and merchants' certificates "
        "were known in advance, a customer's travelled in its first SMS and was learned",
        "zh": "初始化 5 · 到权威注册机构验证证书:以上每条短信都用权威认证机构的证书校验(证书链);"
        "机构与商家的证书事先已知,顾客的证书随第一条短信发送并被记下",
    },
    "sends": {"en": "{sender} -> {recipient}: {type}, seq {seq}", "zh": "{sender} -> {recipient}:{type},序号 {seq}"},
    "content": {"en": "decrypted by {receiver}:", "zh": "{receiver} 解密后的内容:"},
    "bank_only": {"en": "only the bank sees this", "zh": "只有银行能看到"},
    "air": {"en": "on the air (all an eavesdropper sees):", "zh": "空中(窃听者能看到的全部):"},
    "air_tag": {"en": "[air]", "zh": "[空中]"},
    "air_size": {
        "en": "{sender_number} -> {recipient_number}: {bytes} bytes of ciphertext in {parts} SMS ({octets} octets with headers)",
        "zh": "{sender_number} -> {recipient_number}:{bytes} 字节密文,分 {parts} 条短信(含报头 {octets} 字节)",
    },
    "air_hex": {"en": "first 16 bytes of part 1: {hex}", "zh": "第 1 条的前 16 字节:{hex}"},
    "air_legend": {
        "en": "(05 00 03 ref total 01: the concatenated-SMS header; d8 60: CBOR tag 96, a COSE_Encrypt; "
        "then algorithm ids and the nonce: nothing of the content)",
        "zh": "(05 00 03 参考号 总数 01:长短信报头;d8 60:CBOR 标签 96,即 COSE_Encrypt;其后是算法标识与随机数:没有任何内容)",
    },
    "air_unknown": {
        "en": "an SMS no party sent: {sender_number} -> {recipient_number}, {octets} octets (injected?)",
        "zh": "一条不是任何一方发送的短信:{sender_number} -> {recipient_number},{octets} 字节(注入?)",
    },
    "checks": {"en": "checks made by {receiver}:", "zh": "{receiver} 所做的校验:"},
    "refused": {"en": "REFUSED by {actor}: {reason}: {detail}", "zh": "{actor} 拒收:{reason}:{detail}"},
    "not_taken": {
        "en": "not on this path ({sender} -> {recipient} would send it)",
        "zh": "本路径未经过此步(本应由 {sender} 发给 {recipient})",
    },
    "not_reached": {"en": "not reached: the transaction ended before it", "zh": "未到达:交易在此之前已结束"},
    "timer": {"en": "timer", "zh": "定时"},
    "ledger": {"en": "ledger", "zh": "账本"},
    "escrow": {"en": "escrow", "zh": "托管状态"},
    "txn_opened": {
        "en": "the payment center records contract {contract_no} on its transaction-record site: {amount}, {customer} buys from {merchant}",
        "zh": "移动支付中心把交易合同 {contract_no} 写入记录交易的网站:{amount},{customer} 向 {merchant} 购买",
    },
    "parcel": {"en": "parcel: {sender} -> {recipient}, {transit} in transit", "zh": "包裹:{sender} -> {recipient},运送 {transit}"},
    "goods_arrived": {"en": "the parcel from {sender} reaches {actor}", "zh": "{sender} 的包裹到达 {actor}"},
    "rating": {"en": "rating recorded: {rater} gives {ratee} {stars} stars", "zh": "评价已记录:{rater} 给 {ratee} {stars} 星"},
    "restarted": {"en": "the payment center restarted from its database", "zh": "移动支付中心从数据库重新启动"},
    "lost": {"en": "sent but never opened: {sender} -> {recipient}: {type}, seq {seq}", "zh": "已发送但未被打开:{sender} -> {recipient}:{type},序号 {seq}"},
    "press_enter": {"en": "-- press Enter for the next step --", "zh": "-- 按回车键继续下一步 --"},
    "balances": {"en": "Balances, points and credit", "zh": "余额、积分与信用"},
    "party_line": {
        "en": "{party} ({role}): {wallet_name} {wallet_before} -> {wallet}{card}{points}{integrity}{credit}",
        "zh": "{party}({role}):{wallet_name} {wallet_before} -> {wallet}{card}{points}{integrity}{credit}",
    },
    "wallet_customer": {"en": "phone-fee wallet", "zh": "话费账户"},
    "wallet_merchant": {"en": "account at the payment center", "zh": "移动支付中心的商家账户"},
    "card": {"en": "; bank card {before} -> {after}", "zh": ";银行卡 {before} -> {after}"},
    "points": {"en": "; points {points}", "zh": ";积分 {points}"},
    "integrity": {"en": "; integrity points (诚信积分) {points}", "zh": ";诚信积分 {points}"},
    "credit": {"en": "; credit score {score}", "zh": ";信用分 {score}"},
    "escrow_left": {"en": "money still held in escrow: {amount}", "zh": "仍在托管中的金额:{amount}"},
    "outcome": {"en": "outcome of {contract_no}: {outcome}{auto}", "zh": "交易 {contract_no} 的结果:{outcome}{auto}"},
    "auto": {"en": " (auto-accepted)", "zh": "(自动按交易成功处理)"},
    "invariants": {"en": "money invariants:", "zh": "资金不变量:"},
    "holds": {"en": "holds", "zh": "成立"},
    "violated": {"en": "VIOLATED", "zh": "被违反"},
    "rejections": {"en": "security rejections: {list}", "zh": "安全拒收:{list}"},
    "none": {"en": "none", "zh": "无"},
    "figures": {"en": "The seed's own weaknesses, in figures", "zh": "方案缺点(用数字说明)"},
    "fig_steps": {
        "en": "many steps: this purchase took {messages} SMS messages ({parts} SMS parts, {octets} octets on the air) over {duration}",
        "zh": "步骤多:这次购物用了 {messages} 条短信消息({parts} 条短信,空中 {octets} 字节),历时 {duration}",
    },
    "fig_init": {
        "en": "initialization took another {messages} messages ({parts} SMS parts, {octets} octets)",
        "zh": "初始化另用了 {messages} 条消息({parts} 条短信,{octets} 字节)",
    },
    "fig_sizes": {
        "en": "lots of data: messages of {smallest} to {largest} bytes (mean {mean}); a single SMS carries 140 octets",
        "zh": "传递数据多:每条消息 {smallest} 到 {largest} 字节(平均 {mean});一条短信只能装 140 字节",
    },
    "fig_loss": {
        "en": "a lossy channel: this network loses {loss} of SMS and the protocol does not retransmit: "
        "a message of {parts} SMS parts arrives whole only {whole} of the time",
        "zh": "容易掉失数据:本网络丢失 {loss} 的短信,协议没有重发机制:{parts} 条短信组成的消息只有 {whole} 的机会完整到达",
    },
    "fig_loss_if": {
        "en": "a lossy channel: had the network lost {loss} of SMS (this one lost none), a message of {parts} "
        "SMS parts would arrive whole only {whole} of the time; the protocol does not retransmit",
        "zh": "容易掉失数据:假如网络丢失 {loss} 的短信(本次没有丢失),{parts} 条短信组成的消息只有 {whole} 的机会完整到达;协议没有重发机制",
    },
    "fig_parties": {"en": "SMS per party sent: {list}", "zh": "各方发送的短信消息数:{list}"},
    "path": {"en": "the seed's steps on this path: {list}", "zh": "本路径经过的方案步骤:{list}"},
    "yuan": {"en": "{yuan} CNY", "zh": "{yuan} 元"},
    "yes": {"en": "yes", "zh": "是"},
    "no": {"en": "no", "zh": "否"},
    "bytes_more": {"en": "… ({n} bytes)", "zh": "…(共 {n} 字节)"},
}

# --- the optional, INSECURE contrast: the seed's DES ---------------------------------------

DES_TEXTS: dict[str, Words] = {
    "title": {
        "en": "INSECURE teaching contrast: the seed's DES (legacy-des, demo only, never used by the protocol)",
        "zh": "不安全的教学对照:方案原文的 DES(legacy-des,仅用于演示,协议从不使用)",
    },
    "what": {
        "en": "step 3's payment request ({plain} bytes of CBOR) encrypted with DES-CBC under a random 56-bit key",
        "zh": "第3步的请求支付信息({plain} 字节 CBOR)用随机 56 位密钥以 DES-CBC 加密",
    },
    "cipher": {"en": "ciphertext: {size} bytes; first 16: {hex}", "zh": "密文:{size} 字节;前 16 字节:{hex}"},
    "keyspace": {
        "en": "key space: 2^56 = {keys} keys (AES-256: 2^256)",
        "zh": "密钥空间:2^56 = {keys} 个密钥(AES-256:2^256)",
    },
    "search": {
        "en": "brute force for real: the attacker knows all but {bits} key bits and the first plaintext block "
        "(a CBOR map header); it tried {tried} keys in {seconds} s and found the key: {found}",
        "zh": "真实的穷举:攻击者已知除 {bits} 位外的全部密钥位与第一个明文块(CBOR 映射头);"
        "用 {seconds} 秒尝试了 {tried} 个密钥,找到密钥:{found}",
    },
    "rate": {
        "en": "this machine, one core, in Python: about {rate} keys/s -> all 2^56 keys in about {years} years",
        "zh": "本机单核 Python:约每秒 {rate} 个密钥 -> 穷举全部 2^56 个密钥约需 {years} 年",
    },
    "hardware": {
        "en": "dedicated hardware: the EFF's 'Deep Crack' (1998) tried about 9.2 x 10^10 keys/s -> all 2^56 keys in about {days} days",
        "zh": "专用硬件:EFF 的 Deep Crack(1998 年)每秒约 9.2 x 10^10 个密钥 -> 穷举全部密钥约 {days} 天",
    },
    "moral": {
        "en": "that is why this project uses AES-256-GCM (RSA suites) or AES-128-GCM (compact): no key search is feasible",
        "zh": "因此本项目使用 AES-256-GCM(RSA 套件)或 AES-128-GCM(紧凑套件):穷举密钥不可行",
    },
    "found": {"en": "yes, it decrypts the whole message", "zh": "是,可解密整条消息"},
    "not_found": {"en": "NO", "zh": "否"},
}


def words(table: dict[str, Words], key: str, lang: str, /, **fields: object) -> str:
    """The text ``key`` of ``table`` in ``lang``, formatted with ``fields``."""
    return table[key][lang].format(**fields)


def text(key: str, lang: str, /, **fields: object) -> str:
    """The demo's text ``key`` in ``lang``."""
    return words(TEXTS, key, lang, **fields)


def role_name(role: str, lang: str) -> str:
    return ROLE_NAMES.get(role, {}).get(lang, role)


def field_name(name: str, lang: str) -> str:
    """A message field's label: the code's name in English, the seed's term in Chinese."""
    return FIELD_NAMES_ZH.get(name, name) if lang == "zh" else name


def value_word(value: str, lang: str) -> str:
    return VALUES_ZH.get(value, value) if lang == "zh" else value


__all__ = [
    "CHECK_NAMES",
    "DES_TEXTS",
    "FIELD_NAMES_ZH",
    "LANGS",
    "LEDGER_MOVES",
    "MESSAGE_NAMES",
    "OUTCOMES",
    "PARTY_TIMERS",
    "ROLE_NAMES",
    "SEED_STEPS",
    "SEED_STEP_ROLES",
    "TEXTS",
    "WINDOW_LAPSES",
    "field_name",
    "role_name",
    "text",
    "value_word",
    "words",
]
