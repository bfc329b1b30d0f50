"""What ``flask seed-demo`` builds: the three demo unions with their counties and branches, and
the names, places, trades and loan purposes its borrowers are made of.

Plain values only; ``loans.py`` turns them into rows. Place names are real counties and
townships of Hunan and Shandong; 示范省 is the fictional province of the template plugin, so its
ID numbers use region code 39, which no real province has.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BranchSpec:
    code: str
    name: str
    towns: tuple[str, ...]        # 乡镇/街道 the branch lends in; the first is where it sits


@dataclass(frozen=True)
class CountySpec:
    code: str
    name: str
    place: str                    # the county or county-level city, as written in addresses
    short: str                    # short place name used in enterprise names
    region_code: str              # GB/T 2260 code: first six digits of local ID numbers
    area_code: str                # telephone area code of enterprise landlines
    branches: tuple[BranchSpec, ...]


@dataclass(frozen=True)
class ProvinceSpec:
    code: str
    name: str
    plugin: str
    place: str
    counties: tuple[CountySpec, ...]
    city: tuple[str, str] | None = None       # (code, name) of a city office between province and counties
    surnames: str = ""                        # most common first; earlier ones are drawn more often
    villages: tuple[str, ...] = ()
    farm_purposes: tuple[str, ...] = ()
    trades: tuple[str, ...] = ()              # kinds of cooperative / company borrowing here
    product_weights: tuple[tuple[str, int], ...] = ()


HUNAN_VILLAGES = (
    "桃花村", "白沙村", "石门村", "长岭村", "枫林村", "柏树村", "新塘村", "黄泥村", "大塘村", "荷塘村",
    "水口村", "上坪村", "下湾村", "中和村", "清水村", "高桥村", "双江村", "金星村", "龙泉村", "杉木村",
    "茶园村", "竹山村", "楠木村", "石湾村", "沙坪村", "塘湾村", "官庄村", "团山村", "新开村", "湘宁村",
)

SHANDONG_VILLAGES = (
    "东辛庄村", "西店村", "王家庄子村", "北洛村", "崔家庄村", "后疃村", "南楼村", "张家屯村", "前营村",
    "河头村", "孙家集村", "马家店村", "三元朱村", "东斟灌村", "西河村", "李家营村", "大官庄村", "刘家庄村",
    "北岭村", "桃园村", "高家庄村", "杨家河村", "东埠村", "沟头村", "石泉村", "朱家洼村", "前石门村",
)

GENERIC_VILLAGES = (
    "柳湾村", "新民村", "红旗村", "光明村", "团结村", "和平村", "东风村", "胜利村", "新华村", "花园村",
    "马家村", "李家庄村", "杨柳村", "石桥村", "五里村", "河西村", "东岗村", "青山村", "大路村", "永兴村",
)

HUNAN = ProvinceSpec(
    code="HN", name="湖南省农村信用社联合社", plugin="hunan", place="湖南省",
    counties=(
        CountySpec("HN01", "浏阳农村商业银行", "浏阳市", "浏阳市", "430181", "0731", (
            BranchSpec("HN0101", "浏阳农商银行集里支行", ("集里街道", "荷花街道", "北盛镇")),
            BranchSpec("HN0102", "浏阳农商银行永安支行", ("永安镇", "洞阳镇", "镇头镇")),
            BranchSpec("HN0103", "浏阳农商银行大围山支行", ("大围山镇", "达浒镇", "张坊镇")),
        )),
        CountySpec("HN02", "平江县农村信用合作联社", "平江县", "平江县", "430626", "0730", (
            BranchSpec("HN0201", "平江县联社城关信用社", ("汉昌街道", "三阳乡", "伍市镇")),
            BranchSpec("HN0202", "平江县联社安定信用社", ("安定镇", "三市镇", "长寿镇")),
        )),
    ),
    surnames="刘李陈王张彭谭罗周曾唐邓黄胡易杨吴何汤毛龙廖朱钟姚",
    villages=HUNAN_VILLAGES,
    farm_purposes=(
        "种植双季稻{n}亩,购买种子化肥", "生猪养殖,扩建猪舍", "油茶林抚育及低产林改造", "柑橘园管护",
        "烟叶种植{n}亩", "稻虾共作,小龙虾养殖", "购置联合收割机", "花木苗圃种植", "茶园管护及购置制茶设备",
        "黄桃种植", "湘黄鸡养殖", "蔬菜基地种植", "楠竹林经营",
    ),
    trades=("农业专业合作社", "果蔬专业合作社", "油茶专业合作社", "茶叶专业合作社", "生猪养殖专业合作社",
            "家庭农场", "米业有限公司", "花木有限公司", "农产品有限公司"),
    product_weights=(("farm_credit", 30), ("joint_guarantee", 10), ("multi_guarantee", 3), ("guaranteed", 15),
                     ("mortgage", 20), ("pledge", 4), ("consumer", 8), ("working_capital", 7), ("fixed_assets", 3)),
)

SHANDONG = ProvinceSpec(
    code="SD", name="山东省农村信用社联合社", plugin="shandong", place="山东省",
    counties=(
        CountySpec("SD01", "寿光农村商业银行", "寿光市", "寿光市", "370783", "0536", (
            BranchSpec("SD0101", "寿光农商银行营业部", ("圣城街道", "文家街道", "古城街道")),
            BranchSpec("SD0102", "寿光农商银行稻田支行", ("稻田镇", "羊口镇", "上口镇")),
            BranchSpec("SD0103", "寿光农商银行纪台支行", ("纪台镇", "孙家集街道", "化龙镇")),
        )),
        CountySpec("SD02", "沂南县农村信用合作联社", "沂南县", "沂南县", "371321", "0539", (
            BranchSpec("SD0201", "沂南县联社界湖信用社", ("界湖街道", "砖埠镇", "依汶镇")),
            BranchSpec("SD0202", "沂南县联社青驼信用社", ("青驼镇", "张庄镇", "孙祖镇")),
        )),
    ),
    surnames="王张李刘孙赵杨于高马徐陈郭韩宋田崔郑朱董曹袁",
    villages=SHANDONG_VILLAGES,
    farm_purposes=(
        "冬暖式蔬菜大棚建设", "大棚黄瓜种植", "大棚西红柿种植", "苹果园管护", "花生种植{n}亩",
        "小麦玉米种植{n}亩,购买农资", "肉鸡养殖", "奶牛养殖", "购买拖拉机", "樱桃种植", "大姜种植",
        "蔬菜育苗", "金银花种植",
    ),
    trades=("蔬菜专业合作社", "果蔬专业合作社", "肉鸡养殖专业合作社", "家庭农场", "农业科技有限公司",
            "食品有限公司", "冷藏有限公司", "种苗有限公司"),
    product_weights=(("farm_credit", 25), ("joint_guarantee", 15), ("multi_guarantee", 12), ("guaranteed", 10),
                     ("mortgage", 18), ("pledge", 5), ("consumer", 5), ("working_capital", 7), ("fixed_assets", 3)),
)

TEMPLATE = ProvinceSpec(
    code="TP", name="示范省农村信用社联合社", plugin="template", place="示范省",
    city=("TPC1", "示范省农村信用社联合社示范市办事处"),
    counties=(
        CountySpec("TP01", "示范县农村信用合作联社", "示范县", "示范县", "390121", "0990", (
            BranchSpec("TP0101", "示范县联社城关信用社", ("城关镇", "东城街道")),
            BranchSpec("TP0102", "示范县联社河口信用社", ("河口镇", "柳林乡")),
            BranchSpec("TP0103", "示范县联社新市信用社", ("新市镇", "石桥乡")),
        )),
        CountySpec("TP02", "清河农村商业银行", "清河县", "清河县", "390122", "0990", (
            BranchSpec("TP0201", "清河农商银行营业部", ("清河镇", "西关街道")),
            BranchSpec("TP0202", "清河农商银行桥头支行", ("桥头镇", "龙口乡")),
        )),
    ),
    surnames="王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗",
    villages=GENERIC_VILLAGES,
    farm_purposes=(
        "种植水稻{n}亩,购买农资", "生猪养殖", "肉牛养殖", "果园管护", "蔬菜大棚建设", "购置农用机械",
        "中药材种植", "水产养殖", "食用菌种植",
    ),
    trades=("农业专业合作社", "种植专业合作社", "养殖专业合作社", "家庭农场", "农产品有限公司", "米业有限公司"),
    product_weights=(("farm_credit", 25), ("joint_guarantee", 10), ("multi_guarantee", 8), ("guaranteed", 13),
                     ("mortgage", 20), ("pledge", 5), ("consumer", 9), ("working_capital", 7), ("fixed_assets", 3)),
)

PROVINCES = (HUNAN, SHANDONG, TEMPLATE)

# Given names by the generation that still carries them; women's and men's.
GIVEN_NAMES = {
    ("male", "older"): ("建国", "建军", "国强", "志刚", "德明", "卫东", "春生", "永强", "红兵", "新民", "立新",
                        "学军", "长青", "国平", "振华", "建华", "光明", "胜利", "铁柱", "水生", "金生", "友良",
                        "伟", "军", "勇", "强", "平", "林"),
    ("male", "younger"): ("海涛", "俊杰", "浩然", "子豪", "文斌", "明华", "志远", "宇航", "晓东", "家豪", "鹏飞",
                          "俊峰", "天宇", "志强", "伟杰", "凯", "磊", "涛", "斌", "杰", "鹏", "超", "亮"),
    ("female", "older"): ("秀英", "桂兰", "玉梅", "春华", "淑珍", "凤英", "红梅", "金花", "翠兰", "秀兰", "桂芳",
                          "玉兰", "冬梅", "素芬", "月娥", "芳", "兰", "英", "霞"),
    ("female", "younger"): ("丽娟", "美玲", "小燕", "慧敏", "婷婷", "雪梅", "晓红", "丽华", "静怡", "佳慧", "雅琴",
                            "思雨", "芳芳", "静", "丽", "敏", "燕", "娟", "倩"),
}

# Words cooperatives and companies name themselves after.
ENTERPRISE_WORDS = (
    "金穗", "绿源", "丰收", "兴农", "惠农", "禾丰", "富民", "春晖", "新田", "瑞丰", "鑫源", "盛禾", "田园",
    "嘉禾", "恒丰", "万家", "康泰", "青山", "碧水", "华丰", "沃土", "润农", "聚丰", "福源",
)

SIDE_BUSINESS_PURPOSES = ("农资门市进货", "超市经营周转", "农家乐改造装修", "农产品收购周转", "购置货运车辆",
                          "建材门市进货", "汽车修理店经营周转")
CONSUMER_PURPOSES = ("房屋装修", "购买家用汽车", "子女上学费用", "婚嫁用款", "家庭医疗费用")
MORTGAGE_PURPOSES = ("自建住房", "扩大养殖规模,新建养殖场", "购置商铺经营", "厂房租赁及设备购置")
PLEDGE_PURPOSES = ("定期存单质押,生产经营周转", "定期存单质押,临时资金周转")
WORKING_CAPITAL_PURPOSES = ("收购原料流动资金", "购进农资及原材料", "农产品收购周转", "支付货款", "季节性收购资金")
FIXED_ASSET_PURPOSES = ("建设冷库", "购置烘干设备", "厂房扩建", "建设育苗大棚", "购置加工生产线")

MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
                   "155", "156", "157", "158", "159", "177", "180", "181", "182", "183", "185", "186", "187",
                   "188", "189", "199")
