//! Word lists the generator draws from: places, names and the wording of
//! records. Everything here is fictional but shaped like the real thing.

/// A Qingdao district or county-level city.
pub(crate) struct District {
    /// Administrative division code (3702xx).
    pub code: &'static str,
    /// Full name, e.g. 市南区.
    pub name: &'static str,
    /// Short name used in company names, e.g. 市南.
    pub short: &'static str,
    /// Sub-district (街道) and a road in it.
    pub streets: [(&'static str, &'static str); 5],
    /// Basic people's court of the district.
    pub court: &'static str,
    /// Court code used in case numbers (鲁02xx).
    pub court_code: &'static str,
}

/// The ten districts and county-level cities of Qingdao.
pub(crate) const DISTRICTS: [District; 10] = [
    District {
        code: "370202",
        name: "市南区",
        short: "市南",
        streets: [
            ("八大关街道", "汇泉路"),
            ("湛山街道", "湛山二路"),
            ("香港中路街道", "香港中路"),
            ("八大湖街道", "燕儿岛路"),
            ("金门路街道", "闽江路"),
        ],
        court: "青岛市市南区人民法院",
        court_code: "0202",
    },
    District {
        code: "370203",
        name: "市北区",
        short: "市北",
        streets: [
            ("台东街道", "台东一路"),
            ("辽宁路街道", "辽宁路"),
            ("敦化路街道", "敦化路"),
            ("浮山新区街道", "福州北路"),
            ("合肥路街道", "合肥路"),
        ],
        court: "青岛市市北区人民法院",
        court_code: "0203",
    },
    District {
        code: "370211",
        name: "黄岛区",
        short: "黄岛",
        streets: [
            ("黄岛街道", "黄河中路"),
            ("辛安街道", "井冈山路"),
            ("长江路街道", "长江中路"),
            ("薛家岛街道", "嘉陵江东路"),
            ("灵珠山街道", "峨眉山路"),
        ],
        court: "青岛市黄岛区人民法院",
        court_code: "0211",
    },
    District {
        code: "370212",
        name: "崂山区",
        short: "崂山",
        streets: [
            ("中韩街道", "株洲路"),
            ("沙子口街道", "沙子口路"),
            ("金家岭街道", "深圳路"),
            ("北宅街道", "北宅路"),
            ("王哥庄街道", "王哥庄路"),
        ],
        court: "青岛市崂山区人民法院",
        court_code: "0212",
    },
    District {
        code: "370213",
        name: "李沧区",
        short: "李沧",
        streets: [
            ("李村街道", "京口路"),
            ("虎山路街道", "虎山路"),
            ("浮山路街道", "书院路"),
            ("楼山街道", "四流北路"),
            ("九水街道", "九水东路"),
        ],
        court: "青岛市李沧区人民法院",
        court_code: "0213",
    },
    District {
        code: "370214",
        name: "城阳区",
        short: "城阳",
        streets: [
            ("城阳街道", "正阳路"),
            ("流亭街道", "长城路"),
            ("夏庄街道", "银河路"),
            ("惜福镇街道", "惜福镇路"),
            ("棘洪滩街道", "春阳路"),
        ],
        court: "青岛市城阳区人民法院",
        court_code: "0214",
    },
    District {
        code: "370215",
        name: "即墨区",
        short: "即墨",
        streets: [
            ("通济街道", "鹤山路"),
            ("环秀街道", "烟青路"),
            ("潮海街道", "蓝鳌路"),
            ("龙山街道", "振华街"),
            ("北安街道", "通济街"),
        ],
        court: "青岛市即墨区人民法院",
        court_code: "0215",
    },
    District {
        code: "370281",
        name: "胶州市",
        short: "胶州",
        streets: [
            ("三里河街道", "扬州路"),
            ("阜安街道", "兰州东路"),
            ("中云街道", "福州南路"),
            ("九龙街道", "广州北路"),
            ("胶东街道", "常州路"),
        ],
        court: "胶州市人民法院",
        court_code: "0281",
    },
    District {
        code: "370283",
        name: "平度市",
        short: "平度",
        streets: [
            ("东阁街道", "红旗路"),
            ("凤台街道", "人民路"),
            ("李园街道", "杭州路"),
            ("同和街道", "胶平路"),
            ("白沙河街道", "常州路"),
        ],
        court: "平度市人民法院",
        court_code: "0283",
    },
    District {
        code: "370285",
        name: "莱西市",
        short: "莱西",
        streets: [
            ("水集街道", "烟台路"),
            ("望城街道", "威海路"),
            ("沽河街道", "石岛路"),
            ("姜山镇", "青岛路"),
            ("店埠镇", "长岛路"),
        ],
        court: "莱西市人民法院",
        court_code: "0285",
    },
];

/// Address codes for resident IDs: mostly Qingdao, some from elsewhere.
pub(crate) const BIRTH_PLACES: [&str; 16] = [
    "370202", "370203", "370211", "370212", "370213", "370214", "370215", "370281", "370283", "370285", "370102",
    "370602", "371302", "110105", "320102", "230103",
];

/// Single-character surnames, most common first.
pub(crate) const SURNAMES: [&str; 60] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "于",
    "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁", "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆",
    "汪", "范", "金",
];

/// Compound (two-character) surnames.
pub(crate) const COMPOUND_SURNAMES: [&str; 10] =
    ["欧阳", "司马", "诸葛", "上官", "东方", "慕容", "令狐", "皇甫", "尉迟", "公孙"];

/// Characters for male given names.
pub(crate) const GIVEN_MALE: [&str; 40] = [
    "伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "鑫", "波", "斌",
    "宇", "浩", "凯", "健", "俊", "帆", "帅", "旭", "宁", "龙", "林", "博", "文", "志", "国", "建", "海", "峰", "亮",
    "晨", "阳",
];

/// Characters for female given names.
pub(crate) const GIVEN_FEMALE: [&str; 40] = [
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "英", "玲", "燕", "婷", "雪", "慧", "琳", "颖", "倩", "洁",
    "梅", "莉", "萍", "红", "丹", "蕾", "薇", "月", "欣", "悦", "怡", "佳", "雯", "璐", "晶", "琪", "瑶", "兰", "凤",
    "春", "秋",
];

/// The featured individual's name; its given-name characters are in no pool,
/// so the name is unique in the data set.
pub(crate) const FEATURED_PERSON_NAME: &str = "欧阳翊宸";

/// The featured enterprise's name (trade name characters in no pool).
pub(crate) const FEATURED_ENTERPRISE_NAME: &str = "青岛澜屿优选电子商务有限公司";

/// Trade-name (字号) characters; two are drawn per company.
pub(crate) const TRADE_CHARS: [&str; 64] = [
    "海", "韵", "鑫", "源", "恒", "泰", "华", "盛", "瑞", "丰", "祥", "兴", "隆", "达", "宏", "远", "信", "诚", "嘉",
    "禾", "润", "通", "博", "创", "康", "宁", "安", "和", "金", "德", "益", "佳", "福", "汇", "联", "顺", "天", "正",
    "新", "合", "鼎", "铭", "升", "辰", "悦", "晟", "昊", "君", "邦", "鸿", "凯", "旭", "腾", "跃", "星", "明", "亿",
    "卓", "琴", "蓝", "港", "湾", "岛", "帆",
];

/// An industry: the word in the company name and its business scope.
pub(crate) struct Industry {
    /// Industry word in the name (行业表述).
    pub word: &'static str,
    /// Registered business scope.
    pub scope: &'static str,
}

/// Industries of ordinary companies.
pub(crate) const INDUSTRIES: [Industry; 16] = [
    Industry {
        word: "电子商务",
        scope: "互联网销售（除销售需要许可的商品）；日用百货销售；服装服饰零售；食品销售（仅销售预包装食品）",
    },
    Industry {
        word: "商贸", scope: "五金产品批发；建筑材料销售；日用百货销售；货物进出口；技术进出口"
    },
    Industry { word: "食品", scope: "食品生产；食品销售；农副产品销售；食用农产品初加工" },
    Industry {
        word: "海产品", scope: "水产品批发；水产品零售；水产品收购；食品经营（销售预包装食品）"
    },
    Industry {
        word: "服饰", scope: "服装服饰批发；服装服饰零售；鞋帽批发；鞋帽零售；针纺织品销售"
    },
    Industry {
        word: "网络科技", scope: "技术服务、技术开发、技术咨询；软件开发；信息系统集成服务；互联网信息服务"
    },
    Industry {
        word: "物流",
        scope: "道路货物运输（不含危险货物）；普通货物仓储服务（不含危险化学品等需许可审批的项目）；装卸搬运",
    },
    Industry {
        word: "电器", scope: "家用电器销售；电子产品销售；日用电器修理；五金产品零售"
    },
    Industry {
        word: "母婴用品", scope: "母婴用品销售；婴幼儿配方乳粉及其他婴幼儿配方食品销售；玩具销售"
    },
    Industry {
        word: "酒业", scope: "酒类经营；食品销售（仅销售预包装食品）；日用百货销售"
    },
    Industry { word: "茶业", scope: "茶叶种植；茶具销售；食品销售（仅销售预包装食品）" },
    Industry { word: "化妆品", scope: "化妆品零售；化妆品批发；个人卫生用品销售" },
    Industry {
        word: "文化传媒", scope: "广告设计、代理；广告制作；组织文化艺术交流活动；会议及展览服务"
    },
    Industry {
        word: "医疗器械", scope: "第二类医疗器械销售；保健食品（预包装）销售；消毒剂销售（不含危险化学品）"
    },
    Industry { word: "家居", scope: "家具销售；家居用品销售；住宅室内装饰装修；门窗销售" },
    Industry {
        word: "农业科技", scope: "蔬菜种植；水果种植；农产品的生产、销售、加工、运输、贮藏及其他相关服务"
    },
];

/// Organisation forms closing a company name.
pub(crate) const ORG_FORMS: [&str; 3] = ["有限公司", "有限责任公司", "股份有限公司"];

/// Kinds of individual business (个体工商户) and their business scope.
pub(crate) const SHOP_KINDS: [(&str, &str); 10] = [
    ("便利店", "日用百货销售；食品销售（仅销售预包装食品）；烟草制品零售"),
    ("水果店", "新鲜水果零售；食用农产品零售"),
    ("海鲜商行", "水产品零售；鲜肉零售"),
    ("服装店", "服装服饰零售；鞋帽零售"),
    ("日用品商店", "日用百货销售；五金产品零售"),
    ("茶叶店", "茶叶零售；茶具销售"),
    ("手机维修部", "通讯设备修理；电子产品销售"),
    ("小吃店", "餐饮服务；食品小作坊经营"),
    ("烟酒商行", "酒类经营；烟草制品零售"),
    ("网店", "互联网销售（除销售需要许可的商品）；日用百货销售"),
];

/// Courier brands.
pub(crate) const COURIER_BRANDS: [&str; 8] = ["顺丰", "中通", "圆通", "申通", "韵达", "极兔", "京东", "邮政"];

/// Mobile number prefixes (three digits).
pub(crate) const MOBILE_PREFIXES: [&str; 24] = [
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153", "155", "157", "158",
    "159", "166", "177", "180", "186", "187", "189", "199",
];

/// Enterprise registration status with weights.
pub(crate) const ENTERPRISE_STATUS: [(&str, u32); 3] = [("存续", 85), ("吊销", 8), ("注销", 7)];

/// Administrative licences: type and the kind of issuer.
pub(crate) const LICENCE_TYPES: [(&str, &str); 7] = [
    ("食品经营许可证", "JY"),
    ("食品生产许可证", "SC"),
    ("酒类商品零售许可证", "JL"),
    ("第二类医疗器械经营备案凭证", "YX"),
    ("出版物经营许可证", "CB"),
    ("危险化学品经营许可证", "WH"),
    ("网络文化经营许可证", "WW"),
];

/// Market-regulation violations behind administrative penalties.
pub(crate) const PENALTY_VIOLATIONS: [&str; 12] = [
    "销售不符合食品安全标准的食品",
    "发布虚假广告，作引人误解的商业宣传",
    "未在网店首页显著位置公示营业执照信息",
    "销售侵犯注册商标专用权的商品",
    "虚构原价、虚假优惠折价的价格欺诈行为",
    "网络交易平台经营者未履行对平台内经营者的核验义务",
    "擅自使用与他人有一定影响的商品名称相同的标识",
    "生产销售经监督抽检不合格的产品",
    "未取得营业执照从事经营活动",
    "销售超过保质期的食品",
    "编造用户评价，帮助其他经营者进行虚假商业宣传",
    "未按规定明码标价",
];

/// Market-regulation departments.
pub(crate) const MARKET_DEPARTMENTS: [&str; 6] = [
    "青岛市市场监督管理局",
    "青岛市市南区市场监督管理局",
    "青岛市市北区市场监督管理局",
    "青岛市黄岛区市场监督管理局",
    "青岛市崂山区市场监督管理局",
    "青岛市城阳区市场监督管理局",
];

/// Reasons for listing on the abnormal-operations list.
pub(crate) const ABNORMAL_REASONS: [&str; 4] = [
    "未按照《企业信息公示暂行条例》规定的期限公示年度报告",
    "通过登记的住所或者经营场所无法联系",
    "公示企业信息隐瞒真实情况、弄虚作假",
    "未在市场监督管理部门责令的期限内公示有关企业信息",
];

/// Obligations in dishonest-debtor records.
pub(crate) const OBLIGATIONS: [&str; 6] = [
    "支付货款及逾期付款利息",
    "返还借款本金及利息",
    "支付拖欠的劳动报酬",
    "赔偿消费者损失并支付惩罚性赔偿金",
    "支付房屋租金及违约金",
    "支付案件受理费及执行费用",
];

/// Kinds of major tax violations.
pub(crate) const TAX_VIOLATIONS: [&str; 5] =
    ["虚开增值税专用发票", "偷税（逃避缴纳税款）", "骗取出口退税", "逃避追缴欠税", "虚开普通发票"];

/// Courier-regulation violations.
pub(crate) const COURIER_VIOLATIONS: [&str; 6] = [
    "违规收寄禁止寄递物品",
    "未按规定执行收寄验视和实名收寄制度",
    "未经用户同意代为确认收到快件",
    "擅自打开、隐匿、毁弃快件",
    "非法泄露用户使用快递服务的信息",
    "违规处置无法投递又无法退回的快件",
];

/// Categories of complaints to the postal administration.
pub(crate) const COURIER_COMPLAINTS: [&str; 6] =
    ["快件延误", "快件丢失短少", "快件损毁", "未按名址投递", "收费争议", "服务态度"];

/// Categories of 12315 consumer complaints.
pub(crate) const COMPLAINT_CATEGORIES: [&str; 7] =
    ["商品质量", "虚假宣传", "售后服务", "价格欺诈", "退换货纠纷", "个人信息泄露", "假冒伪劣"];

/// Problems described in consumer complaints.
pub(crate) const COMPLAINT_PROBLEMS: [&str; 8] = [
    "收到的商品与页面描述严重不符",
    "商品收到时已经过期",
    "商品疑似假冒品牌",
    "商家以特价为由拒绝七天无理由退货",
    "下单后商家长期不发货",
    "页面标注的原价从未实际成交",
    "商家承诺的赠品未兑现",
    "使用不到一周即出现质量问题",
];

/// Handling status of a 12315 complaint.
pub(crate) const COMPLAINT_STATUS: [(&str, u32); 5] =
    [("已办结", 55), ("调解中", 15), ("已受理", 15), ("终止调解", 10), ("不予受理", 5)];

/// Bases for the red list and the departments that list.
pub(crate) const RED_LIST_BASES: [(&str, &str); 5] = [
    ("纳税信用A级纳税人", "国家税务总局青岛市税务局"),
    ("守合同重信用企业", "青岛市市场监督管理局"),
    ("诚信经营示范店", "青岛市商务局"),
    ("青岛市诚信示范企业", "青岛市发展和改革委员会"),
    ("放心消费示范单位", "青岛市市场监督管理局"),
];

/// Bases for the black list and the departments that list.
pub(crate) const BLACK_LIST_BASES: [(&str, &str); 6] = [
    ("失信被执行人：有履行能力而拒不履行生效法律文书确定的义务", "青岛市中级人民法院"),
    ("重大税收违法失信主体", "国家税务总局青岛市税务局"),
    ("市场监督管理严重违法失信名单", "青岛市市场监督管理局"),
    ("电子商务领域严重失信：组织刷单炒信", "青岛市商务局"),
    ("快递领域严重失信：违规收寄禁寄物品造成严重后果", "青岛市邮政管理局"),
    ("食品安全严重违法生产经营者", "青岛市市场监督管理局"),
];

/// Products for traceability: name and unit price in yuan.
pub(crate) const PRODUCTS: [(&str, f64); 14] = [
    ("崂山绿茶 250g", 168.0),
    ("青岛啤酒 500ml×12听", 69.9),
    ("即食海参 500g", 398.0),
    ("胶州大白菜 5kg", 29.9),
    ("大泽山葡萄 2.5kg", 59.0),
    ("海鲜礼盒 2kg", 288.0),
    ("莱西花生油 5L", 119.0),
    ("蓝莓果酱 300g", 35.0),
    ("即墨老酒 500ml", 88.0),
    ("崂山矿泉水 550ml×24瓶", 45.0),
    ("马家沟芹菜 2kg", 19.9),
    ("鲅鱼水饺 1kg", 49.9),
    ("虾皮 250g", 32.0),
    ("纯棉T恤", 79.0),
];

/// Review comments.
pub(crate) const REVIEWS: [&str; 6] = [
    "物流很快，包装完好",
    "味道不错，会回购",
    "与描述一致",
    "一般般，性价比不高",
    "包装有破损，商品还好",
    "客服态度很好",
];

/// Payment-institution fraud report categories.
pub(crate) const FRAUD_CATEGORIES: [&str; 6] = [
    "虚假交易套现",
    "电信网络诈骗收款",
    "冒用他人身份开立收款账户",
    "出租出借收款码（跑分）",
    "收款后不发货",
    "虚构商品交易骗取货款",
];

/// Reasons for payment-institution risk flags.
pub(crate) const RISK_REASONS: [&str; 6] = [
    "交易集中发生在凌晨时段，金额异常",
    "短时间内大量小额收款后快速转出",
    "退款率、投诉率显著高于同类商户",
    "收到多名用户欺诈举报",
    "疑似为境外赌博网站提供收款",
    "经营地址与交易地长期不一致",
];

/// Platform violations (Chinese with an English gloss, as the platforms
/// record them).
pub(crate) const PLATFORM_VIOLATIONS: [&str; 7] = [
    "刷单炒信 fake orders",
    "销售假冒商品 counterfeit goods",
    "虚假发货 fake shipping",
    "违规售卖禁售商品 prohibited goods",
    "价格欺诈 price fraud",
    "骚扰辱骂消费者 abusing consumers",
    "盗用他人图片 stolen listing images",
];

/// Credit commitments shops sign on the platforms.
pub(crate) const COMMITMENTS: [&str; 6] = [
    "本店承诺所售商品均为正品，假一赔十",
    "承诺不刷单、不炒信、不虚构交易",
    "承诺支持七天无理由退货",
    "承诺付款后48小时内发货",
    "承诺如实描述商品信息，不作虚假宣传",
    "承诺依法保护消费者个人信息",
];

/// Shop status on a platform.
pub(crate) const SHOP_STATUS: [(&str, u32); 3] = [("营业中", 88), ("暂停营业", 7), ("已关店", 5)];

/// Words for shop names.
pub(crate) const SHOP_SUFFIXES: [&str; 6] = ["旗舰店", "专营店", "小铺", "优选", "生活馆", "官方店"];
